"""hebbcore.io's readers: every way an .npz or a JSON table can be wrong is one DataError naming the file, and
nothing is unpickled."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from hebbcore.errors import DataError
from hebbcore.io import read_json_table, read_npz


def damage_member_data(path) -> None:
    """Flip one byte inside the stored data of an uncompressed .npz: the archive opens, its CRC check fails."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_read_npz_reads_all_or_the_named_arrays(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, a=np.arange(3), b=np.ones((2, 2), np.float32))
    got = read_npz(p, "weights")
    assert sorted(got) == ["a", "b"] and got["b"].dtype == np.float32
    np.testing.assert_array_equal(got["a"], np.arange(3))
    assert sorted(read_npz(p, "weights", names=("b", "missing"))) == ["b"]


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "does not exist"),
        (b"", "is not a readable .npz"),
        (b"PK\x03\x04 not a zip", "is not a readable .npz"),
        (b"plain text, not an archive", "neither an .npz archive nor an .npy array"),
        ("npy", "a single .npy array, not an .npz archive"),
        ("crc", "is not a readable .npz (BadZipFile"),
    ],
)
def test_read_npz_refuses_what_is_not_an_npz_in_one_line(tmp_path, content, reason):
    p = tmp_path / "w.npz"
    if content == "npy":
        with open(p, "wb") as fh:
            np.save(fh, np.zeros((400,), np.float32))
    elif content == "crc":
        np.savez(p, w=np.arange(4000, dtype=np.float32))
        damage_member_data(p)
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_npz(p, "init_weights")
    msg = str(err.value)
    assert msg.startswith(f"init_weights: {str(p)!r} ") and reason in msg and "\n" not in msg
    assert "allow_pickle" not in msg  # numpy's advice to load it unsafely is not passed on


def test_read_npz_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "w.npz"
    np.savez(p, w=np.array([Payload(marker)], dtype=object))
    with pytest.raises(DataError, match="holds an array of Python objects, which would be unpickled"):
        read_npz(p, "weights")
    p.write_bytes(pickle.dumps({"w": Payload(marker)}))
    with pytest.raises(DataError, match="neither an .npz archive nor an .npy array"):
        read_npz(p, "weights")
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, reason",
    [
        (None, "does not exist"),
        ('{"epochs": [', "is not readable JSON (JSONDecodeError"),
        (b"\xff\xfe\x00", "is not readable JSON (UnicodeDecodeError"),
        ("[1, 2]", "holds a JSON list, expected an object"),
    ],
)
def test_read_json_table_refuses_in_one_line(tmp_path, text, reason):
    p = tmp_path / "metrics.json"
    if isinstance(text, bytes):
        p.write_bytes(text)
    elif text is not None:
        p.write_text(text)
    with pytest.raises(DataError) as err:
        read_json_table(p, "the run's metrics")
    assert str(err.value).startswith(f"the run's metrics: {str(p)!r} ") and reason in str(err.value)


def test_read_json_table_reads_an_object(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"final": {"test_acc": 0.5}}')
    assert read_json_table(p, "metrics") == {"final": {"test_acc": 0.5}}
