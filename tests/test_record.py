"""record.dpgen: next step, torn lines, durable append."""

from dpgen_lite.record import RECORD, append_record, atomic_write, next_step, read_record


def test_empty_run_starts_at_zero(tmp_path):
    assert next_step(tmp_path) == (0, 0)


def test_next_step_within_and_across_iterations(tmp_path):
    append_record(tmp_path, 0, 0)
    assert next_step(tmp_path) == (0, 1)
    for step in range(1, 9):
        append_record(tmp_path, 0, step)
    assert next_step(tmp_path) == (1, 0)
    assert read_record(tmp_path)[-1] == (0, 8)


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    (tmp_path / RECORD).write_text("0 0\n0 1\n0 ")  # killed while writing "0 2"
    assert next_step(tmp_path) == (0, 2)
    append_record(tmp_path, 0, 2)
    assert read_record(tmp_path) == [(0, 0), (0, 1), (0, 2)]
    assert (tmp_path / RECORD).read_text().splitlines()[-1] == "0 2"


def test_dpgen_record_with_blank_lines(tmp_path):
    (tmp_path / RECORD).write_text("0 0\n\n0 1\n")
    assert next_step(tmp_path) == (0, 2)


def test_atomic_write_replaces_whole_file(tmp_path):
    f = tmp_path / "x.json"
    atomic_write(f, "first")
    atomic_write(f, "second")
    assert f.read_text() == "second"
    assert not list(tmp_path.glob("*.tmp"))
