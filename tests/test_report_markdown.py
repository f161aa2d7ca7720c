"""The one report path: Markdown sections and tables, and the self-contained HTML made from the Markdown."""
import base64


from datadiet.report.markdown import Section, markdown_to_html, write_markdown_and_html, write_section
from datadiet.report.tables import read_csv

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_headings_lists_tables_inline_markup_and_escaping(tmp_path):
    md = "\n".join(["# Title", "## Part <2>", "### Sub", "", "- **bold** and *it* and `code`",
                    "plain & simple", "", "| a | b |", "|---|---|", "| 1 | <x> |", "| 2 | 3 |", "after"])
    html = markdown_to_html(md, tmp_path, title="t & u")
    assert html.startswith("<!doctype html>")
    assert "<title>t &amp; u</title>" in html
    assert "<h1>Title</h1>" in html
    assert "<h2>Part &lt;2&gt;</h2>" in html
    assert "<h3>Sub</h3>" in html
    assert "<li><b>bold</b> and <i>it</i> and <code>code</code></li>" in html
    assert "<p>plain &amp; simple</p>" in html
    assert "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;x&gt;</td></tr><tr><td>2</td><td>3</td></tr></table>" in html
    assert "<p>after</p>" in html
    assert "<script" not in html


def test_images_are_embedded_and_missing_ones_dropped(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "fig.png").write_bytes(PNG)
    html = markdown_to_html("![a figure](sub/fig.png)\n![gone](sub/missing.png)", tmp_path, title="t")
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in html
    assert 'alt="a figure"' in html
    assert html.count("<img") == 1


def test_write_markdown_and_html_say_the_same_thing(tmp_path):
    path = write_markdown_and_html(tmp_path, "report", "# R\n\n| k | v |\n|---|---|\n| x | 1 |\n", title="R")
    assert path == tmp_path / "report.md"
    assert path.read_text() == "# R\n\n| k | v |\n|---|---|\n| x | 1 |\n"
    assert "<td>x</td><td>1</td>" in (tmp_path / "report.html").read_text()


def test_write_section_writes_tables_markdown_and_summary(tmp_path):
    (tmp_path / "plot.png").write_bytes(PNG)
    rows = [{"score": "el2n@epoch1", "keep": 0.5, "mean": 0.812345}]
    section = Section(name="demo", title="A demo study", source="Nobody (2024) Fig. 0", findings=["finding **one**"],
                      tables={"table.csv": rows}, figures={"plot.png": "a plot"}, config={"setting": "smoke"},
                      summary={"extra": 1})
    summary = write_section(tmp_path, section)
    assert summary == {"analysis": "demo", "findings": ["finding **one**"], "extra": 1}
    assert read_csv(tmp_path / "table.csv") == rows
    lines = (tmp_path / "section.md").read_text().splitlines()
    assert lines[:4] == ["## A demo study", "", "*Reproduces Nobody (2024) Fig. 0.*", ""]
    assert "- finding **one**" in lines
    assert "![a plot](demo/plot.png)" in lines
    assert "Table `demo/table.csv`:" in lines
    assert "| score | keep | mean |" in lines
    assert "| el2n@epoch1 | 0.5 | 0.8123 |" in lines


def test_code_blocks_keep_their_lines(tmp_path):
    html = markdown_to_html('```json\n{\n  "a": 1\n}\n```', tmp_path, title="t")
    assert '{\n  &quot;a&quot;: 1\n}' in html


def test_list_items_keep_a_leading_minus_sign(tmp_path):
    html = markdown_to_html("- -0.50 points against random", tmp_path, title="t")
    assert "<li>-0.50 points against random</li>" in html
