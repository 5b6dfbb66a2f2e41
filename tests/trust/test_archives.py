""".pt2 archives are checked the way torch.export.load reads them: no crafted archive runs code.

Each hostile archive is built from a genuine slimforge export, changed the way an attacker would.
Payloads are canaries (a pickle or an expression that creates a file in tmp_path); every test
asserts the error class, that the message names the offending entry, and that the canary never
appears.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from slimforge.errors import ArtifactError
from slimforge.export import check_pt2_is_pickle_free, export_program, load_pt2, save_pt2
from slimforge.models import create_model
from tests.trust.conftest import canary_pickle

ROOT = "archive"
WEIGHTS_CONFIG = f"{ROOT}/data/weights/model_weights_config.json"
CONSTANTS_CONFIG = f"{ROOT}/data/constants/model_constants_config.json"
GRAPH = f"{ROOT}/models/model.json"
SYMBOL = "Symbol('s77', positive=True, integer=True)"


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> Path:
    """A .pt2 written by slimforge (MLP on 1x8x8, dynamic batch): the starting point of every attack."""
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=3, in_channels=1, input_size=[8, 8]).eval()
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    save_pt2(export_program(model, torch.randn(2, 1, 8, 8)), path)
    return path


def rebuild(genuine: Path, out: Path, *, change: dict[str, Callable[[bytes], bytes]] | None = None,
            before: list[tuple[str, bytes]] = (), after: list[tuple[str, bytes]] = (),
            compress: int = zipfile.ZIP_STORED) -> Path:
    """Copy ``genuine`` into ``out`` with entries changed, and extra entries written before/after it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some attacks need
        with zipfile.ZipFile(genuine) as src, zipfile.ZipFile(out, "w") as dst:
            for name, data in before:
                dst.writestr(name, data)
            for info in src.infolist():
                data = src.read(info)
                if change and info.filename in change:
                    data = change[info.filename](data)
                entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                entry.compress_type = compress
                dst.writestr(entry, data)
            for name, data in after:
                dst.writestr(name, data)
    return out


def mark_encrypted(path: Path) -> Path:
    """Set the 'encrypted' flag of every central-directory record (zipfile cannot write one)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        data[at + 8] |= 0x1
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path


def edit_json(fn: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        doc = json.loads(data)
        fn(doc)
        return json.dumps(doc).encode()

    return apply


def pickled_weights_config(data: bytes, path_name: str = "weight_999") -> bytes:
    """The weights config with its first entry switched to a pickled payload in ``path_name``."""
    config = json.loads(data)
    first = next(iter(config["config"]))
    config["config"][first].update(use_pickle=True, path_name=path_name)
    return json.dumps(config).encode()


def first_node(graph: dict) -> dict:
    return graph["graph_module"]["graph"]["nodes"][0]


def sympy_payload(canary: Path) -> str:
    return f"Symbol.__new__.__globals__['__builtins__']['open']('{canary}', 'w')"


# Each attack: (id, builder(genuine, out, canary) -> archive, text the message must contain).
ATTACKS = [
    ("duplicate-config-first-copy-pickled",  # the brief's case: zipfile reads the last copy, torch the first
     lambda g, o, c: rebuild(g, o, before=[(WEIGHTS_CONFIG, pickled_weights_config(zipfile.ZipFile(g).read(WEIGHTS_CONFIG))),
                                           (f"{ROOT}/data/weights/weight_999", canary_pickle(c))]),
     "data/weights/model_weights_config.json appears more than once"),
    ("duplicate-config-differing-in-case",  # torch's reader looks names up ignoring case
     lambda g, o, c: rebuild(g, o, before=[(f"{ROOT}/DATA/weights/model_weights_config.json",
                                            pickled_weights_config(zipfile.ZipFile(g).read(WEIGHTS_CONFIG)))]),
     "model_weights_config.json appears more than once"),
    ("duplicate-payload", lambda g, o, c: rebuild(g, o, after=[(f"{ROOT}/data/weights/weight_0", canary_pickle(c))]),
     "data/weights/weight_0 appears more than once"),
    ("pickled-weight", lambda g, o, c: rebuild(g, o, change={WEIGHTS_CONFIG: pickled_weights_config},
                                               after=[(f"{ROOT}/data/weights/weight_999", canary_pickle(c))]),
     "is a pickled payload"),
    ("use-pickle-as-truthy-string", lambda g, o, c: rebuild(g, o, change={WEIGHTS_CONFIG: edit_json(
        lambda d: d["config"][next(iter(d["config"]))].update(use_pickle="no"))}),
     "is a pickled payload"),
    ("custom-object-constant", lambda g, o, c: rebuild(g, o, change={CONSTANTS_CONFIG: edit_json(
        lambda d: d["config"].update(obj={"path_name": "custom_obj_0", "is_param": False, "use_pickle": False, "tensor_meta": None}))},
        after=[(f"{ROOT}/data/constants/custom_obj_0", canary_pickle(c))]),
     "unexpected entry 'data/constants/custom_obj_0'"),
    ("opaque-object-constant", lambda g, o, c: rebuild(g, o, change={CONSTANTS_CONFIG: edit_json(
        lambda d: d["config"].update(obj={"path_name": "opaque_obj_0", "is_param": False, "use_pickle": False, "tensor_meta": None}))}),
     "names payload 'opaque_obj_0'"),
    ("payload-missing", lambda g, o, c: rebuild(g, o, change={WEIGHTS_CONFIG: edit_json(
        lambda d: d["config"][next(iter(d["config"]))].update(path_name="weight_12345"))}),
     "names data/weights/weight_12345, which the archive does not hold"),
    ("payload-without-tensor-meta", lambda g, o, c: rebuild(g, o, change={WEIGHTS_CONFIG: edit_json(
        lambda d: d["config"][next(iter(d["config"]))].update(tensor_meta=None))}),
     "has no tensor_meta"),
    ("legacy-pickled-weights", lambda g, o, c: rebuild(g, o, after=[(f"{ROOT}/data/weights/model.pt", canary_pickle(c))]),
     "unexpected entry 'data/weights/model.pt'"),
    ("aotinductor-package", lambda g, o, c: rebuild(g, o, after=[(f"{ROOT}/data/aotinductor/model/x.so", b"\x7fELF")]),
     "unexpected entry 'data/aotinductor/model/x.so'"),
    ("sample-inputs", lambda g, o, c: rebuild(g, o, change={f"{ROOT}/data/sample_inputs/model.pt": lambda _: canary_pickle(c)}),
     "holds sample inputs (data/sample_inputs/model.pt)"),
    ("dotdot-entry", lambda g, o, c: rebuild(g, o, after=[(f"{ROOT}/../evil.json", b"{}")]),
     "entry 'archive/../evil.json' lies outside the archive root"),
    ("absolute-entry", lambda g, o, c: rebuild(g, o, after=[("/etc/evil.json", b"{}")]),
     "entry '/etc/evil.json' lies outside the archive root"),
    ("second-root-folder", lambda g, o, c: rebuild(g, o, after=[("other/data.pkl", canary_pickle(c))]),
     "entry 'other/data.pkl' lies outside the archive root"),
    ("backslash-entry", lambda g, o, c: rebuild(g, o, after=[(f"{ROOT}\\data\\x", b"{}")]),
     "lies outside the archive root"),
    ("legacy-layout-at-top-level", lambda g, o, c: rebuild(g, o, before=[("serialized_state_dict.pt", canary_pickle(c))]),
     "entry 'serialized_state_dict.pt' is not inside an archive root folder"),
    ("pickle-file-in-weights", lambda g, o, c: rebuild(g, o, after=[(f"{ROOT}/data/weights/evil.pkl", canary_pickle(c))]),
     "unexpected entry 'data/weights/evil.pkl'"),
    ("sympy-eval-in-shape", lambda g, o, c: rebuild(g, o, change={GRAPH: lambda d: d.replace(SYMBOL.encode(), sympy_payload(c).encode())}),
     "holds the symbolic shape \"Symbol.__new__.__globals__"),
    ("sympy-unknown-name", lambda g, o, c: rebuild(g, o, change={GRAPH: lambda d: d.replace(SYMBOL.encode(), b"sympify('x')")}),
     "names 'sympify', not a sympy function"),
    ("node-calls-os-system", lambda g, o, c: rebuild(g, o, change={GRAPH: edit_json(lambda d: first_node(d).update(target="torch.os.system"))}),
     "models/model.json calls 'torch.os.system', which is not a torch operator"),
    ("node-calls-torch-ops-method", lambda g, o, c: rebuild(g, o, change={GRAPH: edit_json(
        lambda d: first_node(d).update(target="torch.ops.import_module"))}),
     "calls 'torch.ops.import_module', which is not a torch operator"),
    ("operator-argument", lambda g, o, c: rebuild(g, o, change={GRAPH: edit_json(
        lambda d: first_node(d)["inputs"].append({"name": "op", "arg": {"as_operator": "builtins.exec"}, "kind": 2}))}),
     "calls 'builtins.exec'"),
    ("guards-code", lambda g, o, c: rebuild(g, o, change={GRAPH: edit_json(lambda d: d.update(guards_code=[f"open('{c}', 'w')"]))}),
     "carries guards_code"),
    ("compressed-entries", lambda g, o, c: rebuild(g, o, compress=zipfile.ZIP_DEFLATED), "is compressed"),
    ("encrypted-entries", lambda g, o, c: mark_encrypted(rebuild(g, o)), "is encrypted"),
    ("graph-not-json", lambda g, o, c: rebuild(g, o, change={GRAPH: lambda d: d[:100]}), "models/model.json is not valid JSON"),
    ("not-a-zip", lambda g, o, c: (o.write_bytes(b"\x80\x04not a zip at all"), o)[1], "is not a .pt2 archive (not a zip file)"),
    ("empty-file", lambda g, o, c: (o.write_bytes(b""), o)[1], "is not a .pt2 archive"),
]


@pytest.mark.parametrize("build, expected", [pytest.param(b, e, id=i) for i, b, e in ATTACKS])
def test_hostile_archive_is_refused_and_runs_nothing(build, expected, genuine, tmp_path, canary):
    archive = build(genuine, tmp_path / "hostile.pt2", canary)
    with pytest.raises(ArtifactError) as refused:
        load_pt2(archive)
    message = str(refused.value)
    assert str(archive) in message and expected in message, message
    with pytest.raises(ArtifactError):
        check_pt2_is_pickle_free(archive)
    assert not canary.exists()


def test_the_duplicate_config_attack_is_real_without_the_check(genuine, tmp_path, canary):
    """Why names are compared as torch reads them: zipfile returns the benign last copy, while
    torch's reader (a binary search over names sorted ignoring case) can be steered, by padding the
    archive, to return the first copy, whose pickled weight torch.export.load then runs."""
    benign = zipfile.ZipFile(genuine).read(WEIGHTS_CONFIG)
    for pad in range(8):
        archive = rebuild(genuine, tmp_path / f"dup{pad}.pt2", before=[(WEIGHTS_CONFIG, pickled_weights_config(benign))],
                          after=[(f"{ROOT}/data/weights/weight_999", canary_pickle(canary)),
                                 *[(f"{ROOT}/extra/pad{k}", b"-") for k in range(pad)]])
        if torch._C.PyTorchFileReader(str(archive)).get_record("data/weights/model_weights_config.json") != benign:
            break
    else:
        pytest.fail("no padding made torch's reader return the first copy")
    assert zipfile.ZipFile(archive).read(WEIGHTS_CONFIG) == benign  # what a name-based zipfile check inspects
    with pytest.raises(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.load(str(archive))
    assert canary.exists()  # plain torch.export.load ran the payload
    canary.unlink()
    with pytest.raises(ArtifactError, match="appears more than once"):
        load_pt2(archive)
    assert not canary.exists()


def test_the_sympy_attack_is_real_without_the_check(genuine, tmp_path, canary):
    """No pickle at all: torch.export.load parses symbolic shapes with sympy's eval."""
    archive = rebuild(genuine, tmp_path / "sym.pt2", change={GRAPH: lambda d: d.replace(SYMBOL.encode(), sympy_payload(canary).encode())})
    with pytest.raises(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.load(str(archive))
    assert canary.exists()


@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
def test_archives_slimforge_writes_pass_and_load(strict, tmp_path):
    """Both export modes (strict is what the PT2E quantizer uses) pass the check and still run."""
    torch.manual_seed(0)
    model = create_model("cnn", num_classes=3, in_channels=1, input_size=[8, 8]).eval()
    path = save_pt2(export_program(model, torch.randn(2, 1, 8, 8), strict=strict), tmp_path / "model.pt2")
    check_pt2_is_pickle_free(path)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_pt2(path)(x), model(x))


def test_a_folder_or_missing_file_is_named(tmp_path):
    with pytest.raises(ArtifactError, match="is not a file"):
        load_pt2(tmp_path)
    with pytest.raises(ArtifactError, match="nope.pt2 does not exist"):
        load_pt2(tmp_path / "nope.pt2")


def test_load_reads_the_file_once(genuine, tmp_path, monkeypatch):
    """torch loads the bytes that were checked: swapping the file after the check changes nothing."""
    path = tmp_path / "model.pt2"
    path.write_bytes(genuine.read_bytes())
    import slimforge.export as export_module

    real_check = export_module.check_pt2_bytes

    def check_then_swap(data: bytes, source: str) -> None:
        real_check(data, source)
        path.write_bytes(b"swapped after the check")

    monkeypatch.setattr(export_module, "check_pt2_bytes", check_then_swap)
    assert load_pt2(path)(torch.randn(2, 1, 8, 8)).shape == (2, 3)
