"""The benchmark scripts' shared writer of docs/BENCHMARKS.md sections."""

from scl_hf.benchmarks import append_entry, replace_section


def test_sections_are_appended_to_and_replaced_without_touching_others(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    append_entry(path, "## A", "run 1")
    replace_section(path, "## B", "## B\n\nold")
    append_entry(path, "## A", "run 2")
    replace_section(path, "## B", "## B\n\nnew")
    assert path.read_text() == "# Benchmarks\n\n## A\nrun 1\nrun 2\n\n## B\n\nnew\n"
