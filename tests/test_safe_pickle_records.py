"""``PlainRecord``: a benchmark pickle may rebuild an allowed record, but the record may hold only
plain data (numbers, strings, None, tuples of them, other records). Everything else in its state is
refused, even when the unpickler could build it without naming any global (lists, dicts, sets,
bytes) or through another allowed class, because that state is what reaches the tables."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from nasforge.tables import nb201
from nasforge.tables.safe_pickle import NUMPY_SCALARS, PlainRecord, UnsafePickleError, restricted_load


class Rec(PlainRecord):
    """An allowed record class."""


class Thing:
    """An ordinary class that some allow-list names (as a numpy helper might be): allowed to be
    built, but not plain data, so a record must not hold one."""


ALLOWED = {(__name__, "Rec"): Rec, (__name__, "Thing"): Thing, **NUMPY_SCALARS}


class Emit:
    """Pickles as ``callable(*args)`` followed by ``state``: any state for any class, by hand."""

    def __init__(self, callable_, args=(), state=None):
        self.callable, self.args, self.state = callable_, args, state

    def __reduce__(self):
        return (self.callable, self.args) if self.state is None else (self.callable, self.args, self.state)


def record(**fields):
    r = Rec()
    r.__dict__.update(fields)
    return r


def load(obj, protocol=4):
    return restricted_load(pickle.dumps(obj, protocol=protocol), ALLOWED)


def test_a_record_of_plain_data_loads_with_its_fields():
    inner = record(value=0.25, uncertainty=np.float32(0.5))
    loaded = load(record(n=3, x=1.5, name="cell", flag=True, missing=None, big=np.int64(7), acc=np.float64(91.5),
                         pair=(1, 2.5, ("a", None)), drift=inner, drifts=(inner, record(value=1))))
    assert isinstance(loaded, Rec)
    fields = loaded.fields()
    assert {k: fields[k] for k in ("n", "x", "name", "flag", "missing", "pair")} == {
        "n": 3, "x": 1.5, "name": "cell", "flag": True, "missing": None, "pair": (1, 2.5, ("a", None))}
    assert fields["big"] == 7 and fields["acc"] == 91.5
    assert isinstance(fields["drift"], Rec) and fields["drift"].fields() == {"value": 0.25, "uncertainty": 0.5}
    assert [d.fields()["value"] for d in fields["drifts"]] == [0.25, 1]


@pytest.mark.parametrize("value", [
    [1, 2],
    {"a": 1},
    {1, 2},
    b"raw",
    (1, [2]),
    (record(ok=1), {"nested": "dict"}),
    Thing(),
], ids=["list", "dict", "set", "bytes", "tuple-with-list", "tuple-with-dict", "instance-of-other-class"])
def test_a_record_holding_non_plain_data_is_refused(value):
    with pytest.raises(UnsafePickleError, match=r"Rec\.bad holds a \w+, not plain data"):
        load(record(ok=1, bad=value))


def test_a_record_nested_in_a_record_is_checked_too():
    with pytest.raises(UnsafePickleError, match="not plain data"):
        load(record(drift=record(value=[0.25])))


@pytest.mark.parametrize("state, message", [
    (["not", "a", "dict"], "state must be a dict"),
    (({"a": 1}, {"slot": 2}), "state must be a dict"),  # the (dict, slots) form
    ({1: "int key"}, "non-string attribute name"),
])
def test_a_record_state_must_be_a_dict_of_named_attributes(state, message):
    with pytest.raises(UnsafePickleError, match=message):
        load(Emit(Rec, (), state))


def test_a_reduce_to_os_system_inside_a_record_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError, match="system"):
        load(record(ok=1, bad=Emit(os.system, (f"touch {marker}",))))
    assert not marker.exists()


def _as_nb201_architecture(obj) -> bytes:
    """The pickle of a ``Rec`` renamed to the class the NB-201 file holds (protocol 2 names a
    class as text, ``c<module>\\n<name>\\n``, so the rename is a plain replacement)."""
    data = pickle.dumps(obj, protocol=2)
    here = f"c{__name__}\nRec\n".encode()
    assert data.count(here) == 1
    return data.replace(here, b"canalognasbench.data\nArchitecture\n")


@pytest.mark.parametrize("bad", [[91.5, 92.0], {"baseline_accuracy": 91.5}])
def test_the_nb201_reader_refuses_a_tampered_file_whose_record_holds_containers(tmp_path, bad):
    good = tmp_path / "good.anb"
    good.write_bytes(_as_nb201_architecture({(0,) * 6: record(baseline_accuracy=91.5)}))
    assert nb201.read_raw(good) == {(0,) * 6: {"baseline_accuracy": 91.5}}
    evil = tmp_path / "data.anb"
    evil.write_bytes(_as_nb201_architecture({(0,) * 6: record(baseline_accuracy=bad)}))
    with pytest.raises(UnsafePickleError, match="not plain data"):
        nb201.read_raw(evil)
