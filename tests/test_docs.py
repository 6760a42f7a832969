"""The plugin author's guide's examples are real code: they load and run as documented."""

from __future__ import annotations

import re
from pathlib import Path

from kzconsole.engine import JobStatus
from tests.conftest import output_csv

DOC = Path(__file__).parent.parent / "docs" / "plugins.md"


def guide_module() -> str:
    guide = DOC.read_text().split("## Triggers")[0]
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    return "\n".join(blocks)


def test_guide_examples_load_and_run(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("hello.py", guide_module())
    engine = engine_factory()
    source = next(s for s in engine.plugins() if s.source.endswith("hello.py"))
    assert source.error is None, source.error
    people = tmp_path / "people.csv"
    people.write_text("name,title,country\nAda,Dr,UK\nLinus,,FI\nAda,,UK\n")

    def run(action, with_input=True):
        job = engine.add_job("hello", action, input=people if with_input else None)
        final = engine.run_job(job.id)
        return final, output_csv(engine, final)

    final, out = run("greet")
    assert out[:3] == [["name", "greeting", "error"], ["Ada", "Hello Dr Ada", ""], ["Linus", "Hello Linus", ""]]
    final, out = run("dedupe")
    assert final.status is JobStatus.PARTIAL and out[3][-1] == "duplicate of row 1"
    final, out = run("count_by_country")
    assert out[1:] == [["FI", "1", ""], ["UK", "2", ""]]
    final, out = run("numbers", with_input=False)
    assert out[-1] == ["10", "100", ""]
