from civicflow.cli import build_parser, settings_from


def test_flags_override_settings(monkeypatch):
    monkeypatch.setenv("CIVICFLOW_PARTITIONS", "6")
    monkeypatch.setenv("CIVICFLOW_WORKER_ENGINE", "faust")
    args = build_parser().parse_args(["replay", "--format", "jn-grid", "f.jsonl", "--engine", "kafka",
                                      "--partitions", "3"])
    settings = settings_from(args)
    assert (settings.worker_engine, settings.partitions) == ("kafka", 3)
    plain = settings_from(build_parser().parse_args(["report"]))
    assert (plain.worker_engine, plain.partitions) == ("faust", 6)  # from the environment
