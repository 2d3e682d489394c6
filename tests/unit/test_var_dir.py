"""The var dir check when several commands (or threads) share one directory at once."""

from __future__ import annotations

import threading

import pytest

from civicflow.embedded import ensure_var_dir
from schemas.errors import ConfigError


def test_commands_checking_one_var_dir_at_once_all_find_it_writable(tmp_path):
    refused: list[str] = []

    def check_repeatedly() -> None:
        for _ in range(500):
            try:
                ensure_var_dir(tmp_path)
            except ConfigError as exc:
                refused.append(str(exc))
                return

    threads = [threading.Thread(target=check_repeatedly) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert refused == []
    assert list(tmp_path.iterdir()) == []  # no probe left behind


def test_a_var_dir_under_a_file_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write to .*--var-dir"):
        ensure_var_dir(blocker / "var")
