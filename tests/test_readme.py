"""The README's "compress your own model" script runs as printed and its files are real."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "<!-- readme-compress-example -->"


def _readme_script() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    after = text[text.index(MARKER):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_readme_script_is_at_most_25_lines():
    assert len(_readme_script().strip().splitlines()) <= 25


@pytest.mark.slow
def test_readme_script_compresses_a_user_nnx_model_into_real_files(tmp_path, xla_default_env):
    """As a user runs it: a fresh process, XLA's default compiler settings (tests/conftest.py)."""
    script = tmp_path / "readme.py"
    script.write_text(_readme_script() + '\nprint(f"DENSE_BYTES {dense_bytes}")\n')
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=xla_default_env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    dense_bytes = int(re.search(r"DENSE_BYTES (\d+)", out).group(1))
    sizes = {name: os.path.getsize(tmp_path / f"{name}.wsjax") for name in ("deep_compression", "hashed_1_8")}
    # HashedNets at 1/8 stores the buckets (plus raw biases and the hash specs): close to 1/8.
    assert 0.12 < sizes["hashed_1_8"] / dense_bytes < 0.135, sizes
    # 90 % pruned, 5/8-bit codebooks, relative indices and Huffman: well under a tenth.
    assert sizes["deep_compression"] / dense_bytes < 0.08, sizes
    for name, size in sizes.items():
        assert f"{name}: val accuracy" in out and f"{size:,} bytes" in out
    accuracies = [float(a) for a in re.findall(r"val accuracy (\d\.\d+)", out)]
    assert min(accuracies) > 0.7, out  # real training on real data (chance is 0.1)
