"""The ``wsjax`` command: list, inspect, run; user mistakes end in one line and exit 2."""

import jax
import jax.numpy as jnp

from wsjax import cli, compress, sharing, storage
from wsjax.models import MLP


def test_list_names_studies_stages_transforms_and_codecs(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    from wsjax.study import discover

    assert discover.studies() == ["baseline", "deep_compression", "distillation", "early_exits", "frontier",
                                  "hashednets", "lecun89", "lottery", "quantization_bits", "redundancy", "separable",
                                  "sharing_levels", "soft_compression", "soft_sharing"]
    for name in (*discover.studies(), "prune", "quantize", "hashing_pool", "low_rank", "tying", "shared_basis",
                 "predicted"):
        assert name in out


def test_inspect_prints_the_version_checksum_and_codec_per_layer(tmp_path, capsys):
    model = MLP((64, 10))
    params = model.init(jax.random.key(0), jnp.zeros((1, 20)))["params"]
    t = sharing.hashed(1 / 8)
    report = storage.save(tmp_path / "h.wsjax", (t, t.init(jax.random.key(1), params)))
    assert cli.main(["inspect", str(tmp_path / "h.wsjax")]) == 0
    out = capsys.readouterr().out
    assert "format version 2" in out and "verified" in out and f"{report.file_bytes:,} bytes" in out
    rows = [line for line in out.splitlines() if line.startswith("| Dense_0/kernel")]
    assert len(rows) == 1 and "| hashing |" in rows[0]


def test_user_mistakes_are_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "missing.wsjax")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No such file" in err and "Traceback" not in err
    (tmp_path / "bad.wsjax").write_bytes(b"\x89WSJAX\r\n" + b"\0" * 40)
    assert cli.main(["inspect", str(tmp_path / "bad.wsjax")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.wsjax" in err
    assert cli.main(["run", "no_such_study"]) == 2
    assert "unknown study 'no_such_study'" in capsys.readouterr().err


def test_the_command_is_installed_with_the_package():
    import tomllib
    import os

    with open(os.path.join(cli.ROOT, "pyproject.toml"), "rb") as f:
        assert tomllib.load(f)["project"]["scripts"]["wsjax"] == "wsjax.cli:main"
    assert compress.STAGES  # the library the command lists
