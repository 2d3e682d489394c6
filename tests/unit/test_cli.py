from pathlib import Path

from civicflow.cli import build_parser, settings_from


def test_flags_override_settings(monkeypatch):
    monkeypatch.setenv("CIVICFLOW_PARTITIONS", "6")
    monkeypatch.setenv("CIVICFLOW_ALLOWED_LATENESS_SECONDS", "120")
    args = build_parser().parse_args(["replay", "--format", "jn-grid", "f.jsonl", "--partitions", "3"])
    settings = settings_from(args)
    assert (settings.allowed_lateness_seconds, settings.partitions) == (120, 3)
    plain = settings_from(build_parser().parse_args(["report"]))
    assert plain.partitions == 6  # from the environment


def test_each_format_applies_to_the_files_after_it(tmp_path):
    import pytest

    from civicflow.commands import feed_files
    from schemas.errors import ConfigError

    for name in ("a.csv", "b.csv", "c.jsonl", "d.jsonl"):
        (tmp_path / name).write_text("")
    a, b, c, d = (str(tmp_path / name) for name in ("a.csv", "b.csv", "c.jsonl", "d.jsonl"))
    args = build_parser().parse_args(["replay", "--format", "12345", a, b, "--format", "wuye", c,
                                      "--as-of", "2026-10-20T08:00:00+08:00", d])
    assert feed_files(args) == [("12345", Path(a)), ("12345", Path(b)), ("wuye", Path(c)),
                                ("wuye", Path(d))]
    ingest = build_parser().parse_args(["ingest", "--format", "jn-grid", a, "--bootstrap", "h:1"])
    assert feed_files(ingest) == [("jn-grid", Path(a))]
    with pytest.raises(ConfigError, match="unknown feed format 'csv': use one of jn-grid, 12345"):
        feed_files(build_parser().parse_args(["replay", "--format", "12345", a, "--format", "csv", b]))
    with pytest.raises(ConfigError, match="--format wuye names no file"):
        feed_files(build_parser().parse_args(["replay", "--format", "12345", a, "--format", "wuye"]))
    with pytest.raises(ConfigError, match="input file .*none.csv does not exist"):
        feed_files(build_parser().parse_args(["replay", "--format", "12345", str(tmp_path / "none.csv")]))


def test_stall_timeout_flag_and_setting(monkeypatch):
    monkeypatch.setenv("CIVICFLOW_STALL_TIMEOUT_SECONDS", "42")
    assert settings_from(build_parser().parse_args(["replay", "--format", "jn-grid", "f"])
                         ).stall_timeout_seconds == 42
    args = build_parser().parse_args(["replay", "--format", "jn-grid", "f", "--stall-timeout", "7.5"])
    assert settings_from(args).stall_timeout_seconds == 7.5
