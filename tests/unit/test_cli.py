from civicflow.cli import build_parser, settings_from


def test_flags_override_settings(monkeypatch):
    monkeypatch.setenv("CIVICFLOW_PARTITIONS", "6")
    monkeypatch.setenv("CIVICFLOW_ALLOWED_LATENESS_SECONDS", "120")
    args = build_parser().parse_args(["replay", "--format", "jn-grid", "f.jsonl", "--partitions", "3"])
    settings = settings_from(args)
    assert (settings.allowed_lateness_seconds, settings.partitions) == (120, 3)
    plain = settings_from(build_parser().parse_args(["report"]))
    assert plain.partitions == 6  # from the environment
