"""`modelsign audit --html`: the report rendered by a real browser (headless
Chromium): the DOM it built (rows, counts, sort and filter applied by the
page's own script from the query string, detail panels, the lineage SVG),
hostile names shown as text, nothing fetched, and screenshots that are not
blank."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import pytest

import modelsign
from modelsign import keys
from modelsign._audit import (
    AuditRecord,
    AuditReport,
    DependencyRow,
    FileRow,
    ProvenanceSummary,
    SignerRow,
    Spool,
    resolve_lineage,
)
from modelsign._audit._html import write_report
from modelsign.manifest import Manifest, Resource, Serialization
from tests.browserkit import Element, dump_dom, parse, screenshot
from tests.conftest import flip_byte, require_program, write_torch_model
from tests.fuzz_bundle import sign_payload

require_program("chromium")

#: Injected markup that, if it ever ran or parsed as markup, changes the title.
SCRIPT = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"


def _audit(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelsign", "audit", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, object]]]:
    """A store with good, tampered, untrusted, unsigned and hostile models,
    audited to REPORT.html; and the audit's JSON, by path."""
    root = tmp_path_factory.mktemp("html")
    key, other = keys.generate("ed25519"), keys.generate("ed25519")
    keys.write_keypair(key, root / "trusted", None)
    store = root / "store"
    for name, seed in (("alpha", 1), ("bravo", 2), ("charlie", 3), ("delta", 4)):
        model = store / name
        model.mkdir(parents=True)
        write_torch_model(model / "model.pt", seed)
        (model / "config.json").write_text("{}")
        modelsign.sign(model, other if name == "charlie" else key)
    flip_byte(store / "bravo" / "model.pt")
    (store / "echo").mkdir()
    (store / "echo" / "weights.safetensors").write_bytes(b"w")
    # Hostile: a folder named with markup, and a bundle whose subject,
    # files and archive members are markup (signed by the trusted key).
    hostile = store / IMG
    hostile.mkdir()
    write_torch_model(hostile / "model.pt", 9)
    modelsign.sign(hostile, key)
    crafted = store / "crafted"
    crafted.mkdir()
    from modelsign._hashing import MemberDigest

    member = MemberDigest(SCRIPT.replace("/", "|"), 1, "b" * 64, "stored")
    resources = (
        Resource(f"a/{SCRIPT}", "sha256", "a" * 64, 5, "zip", (member,)),
        Resource('x"onmouseover="document.title=1".bin', "sha256", "c" * 64, 5),
    )
    manifest = Manifest(f"{SCRIPT}{IMG}", resources, Serialization())
    (crafted / "model.sig").write_bytes(sign_payload(manifest.to_payload(), key))
    page = root / "REPORT.html"
    result = _audit(store, "--key", root / "trusted.pub", "--html", page, "--json")
    assert result.returncode == 1, result.stderr
    models = {m["path"]: m for m in json.loads(result.stdout)["models"]}
    return page, models


def _rows(dom: Element) -> list[Element]:
    table = dom.find("section", id="models")
    return table.find("tbody").find_all("tr")


def _model(row: Element) -> str:
    return row.find("td", **{"data_k": "model"}).find("a").text()


def test_the_browser_renders_every_model_with_its_verdict(
    report: tuple[Path, dict[str, dict[str, object]]],
) -> None:
    page, models = report
    dom = dump_dom(page)
    rows = _rows(dom)
    assert {_model(r): r.attrs["data-verdict"] for r in rows} == {
        path: m["verdict"] for path, m in models.items()
    }
    # The script ran (the page's CSP allows it by hash): it filled the count.
    assert dom.find(id="shown").text() == f"{len(models)} of {len(models)} shown"
    assert "nojs" not in dom.find("html").attrs.get("class", "")
    for verdict in ("verified", "rejected", "unsigned", "error"):
        count = sum(m["verdict"] == verdict for m in models.values())
        assert dom.find("a", id=f"count-{verdict}").find("b").text() == str(count)
    # Failures first, by default; each row links to its detail panel.
    severities = [int(r.find("td", **{"data_k": "verdict"}).attrs["data-v"]) for r in rows]
    assert severities == sorted(severities)
    for row in rows:
        anchor = row.find("td", **{"data_k": "model"}).find("a").attrs["href"]
        panel = dom.find("article", id=anchor[1:])
        assert panel.find("h3").text() == _model(row)
    bravo = next(p for p in models if p.endswith("/bravo"))
    panel = dom.find("article", id=next(
        r.find("a").attrs["href"][1:] for r in rows if _model(r) == bravo
    ))  # fmt: skip
    assert "DigestMismatchError" in panel.text()
    assert "model.pt: digest mismatch: expected " in panel.find("pre").text()
    assert "config.json" in panel.find_all("table")[-1].text()


@pytest.mark.parametrize(
    ("query", "key", "reverse"),
    [("?sort=model", "model", False), ("?sort=model&dir=desc", "model", True)],
)
def test_sorting_from_the_query_string(
    report: tuple[Path, dict[str, dict[str, object]]], query: str, key: str, reverse: bool
) -> None:
    page, _ = report
    dom = dump_dom(page, query)
    names = [_model(r) for r in _rows(dom)]
    assert names == sorted(names, reverse=reverse)
    header = dom.find("th", **{"data_k": key})
    assert header.attrs["aria-sort"] == ("descending" if reverse else "ascending")
    assert len(set(names)) == len(names) == 7


def test_filtering_from_the_query_string(
    report: tuple[Path, dict[str, dict[str, object]]],
) -> None:
    page, models = report
    dom = dump_dom(page, "?verdict=rejected,unsigned")
    visible = {_model(r) for r in _rows(dom) if "hidden" not in r.attrs}
    assert visible == {p for p, m in models.items() if m["verdict"] in ("rejected", "unsigned")}
    boxes = {b.attrs["value"]: "checked" in b.attrs for b in dom.find_all("input", name="verdict")}
    assert boxes == {"verified": False, "rejected": True, "unsigned": True, "error": False}
    dom = dump_dom(page, "?q=charlie")
    visible = {_model(r) for r in _rows(dom) if "hidden" not in r.attrs}
    assert visible == {p for p in models if p.endswith("/charlie")}
    assert dom.find(id="shown").text() == f"1 of {len(models)} shown"
    dom = dump_dom(page, "?q=no-such-model")
    assert all("hidden" in r.attrs for r in _rows(dom))
    assert "hidden" not in dom.find(id="empty").attrs


def test_hostile_names_show_as_text(report: tuple[Path, dict[str, dict[str, object]]]) -> None:
    page, models = report
    dom = dump_dom(page)
    assert dom.find("title").text().startswith("modelsign audit: 7 models")
    # The only script is the page's own; no injected element or handler.
    assert len(dom.find_all("script")) == 1
    assert not dom.find_all("img")
    assert not [el for el in dom.iter() if any(a.startswith("on") for a in el.attrs)]
    # The names are there, as text.
    hostile = next(p for p in models if p.endswith(IMG))
    assert hostile in {_model(r) for r in _rows(dom)}
    crafted = next(p for p in models if p.endswith("/crafted"))
    row = next(r for r in _rows(dom) if _model(r) == crafted)
    assert row.find("div", class_="sub").text() == f"{SCRIPT}{IMG}"
    panel = dom.find("article", id=row.find("a").attrs["href"][1:])
    files = panel.find_all("table")[-1].text()
    assert f"a/{SCRIPT}" in files
    assert 'x"onmouseover="document.title=1".bin' in files
    # In the file itself every one of them is escaped.
    text = page.read_text()
    assert SCRIPT not in text
    assert IMG not in text
    assert html.escape(SCRIPT) in text


def test_the_page_is_self_contained(report: tuple[Path, dict[str, dict[str, object]]]) -> None:
    page, _ = report
    dom = parse(page.read_text())
    policy = dom.find("meta", **{"http_equiv": "Content-Security-Policy"}).attrs["content"]
    assert policy.startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe-inline" not in policy
    for el in dom.iter():
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            value = el.attrs.get(name)
            assert value is None or value.startswith(("#", "?")), (el.tag, name, value)
    assert len(dom.find_all("style")) == 1
    style = dom.find("style").text()
    assert "url(" not in style
    assert "@import" not in style
    assert "@font-face" not in style


def _not_blank(image_path: Path, page: Path, suffix: str = "") -> None:
    image = screenshot(page, image_path, suffix)
    colours = image.colours()
    _, count = colours.most_common(1)[0]
    assert len(colours) > 100, len(colours)
    assert count < 0.9 * sum(colours.values())
    # The header band is the page's dark ink: the styles applied.
    assert image.pixel(5, 5) == (15, 23, 42)


def test_screenshots_are_not_blank(
    report: tuple[Path, dict[str, dict[str, object]]], tmp_path: Path
) -> None:
    page, _ = report
    _not_blank(tmp_path / "page.png", page)
    # A detail panel, opened by its fragment, covers the right of the page.
    dom = dump_dom(page)
    target = _rows(dom)[0].find("a").attrs["href"]
    image = screenshot(page, tmp_path / "detail.png", target)
    assert image.pixel(image.width - 20, image.height - 20) == (255, 255, 255)
    assert image.pixel(20, image.height - 20) != (255, 255, 255)  # the dimmed page


def _lineage_report(tmp_path: Path) -> Path:
    """Records with provenance (datasets, base models), as the HTML writer
    receives them: a base, two fine-tunes, a fine-tune of a rejected base."""

    def digest(n: int) -> str:
        return f"{n:064x}"

    data = DependencyRow(f"data{SCRIPT}", "sha256:" + digest(900))
    signer = SignerRow("key", "ab" * 32, verified=True, bundle="model.sig")

    def record(
        i: int, path: str, verdict: str = "verified", base: int | None = None
    ) -> AuditRecord:
        prov = ProvenanceSummary(
            "verified",
            builder="https://ci.example/build",
            datasets=(data,),
            base_model=None if base is None else DependencyRow("base", "sha256:" + digest(base)),
        )
        return AuditRecord(
            path, "folder", verdict, root_digest=digest(i), signers=(signer,), provenance=prov,  # type: ignore[arg-type]
            index=i, error_type=None if verdict == "verified" else "DigestMismatchError",
            reason=None if verdict == "verified" else "model does not match",
        )  # fmt: skip

    records = [
        record(0, "store/base"),
        record(1, "store/ft-a", base=0),
        record(2, "store/ft-b", base=0),
        record(3, "store/bad-base", "rejected"),
        record(4, "store/ft-of-bad", base=3),
        record(5, f"store/ft-{IMG}", base=77),  # a base not in this audit
    ]
    spool = Spool()
    for _ in records:
        spool.add([FileRow("w.bin", 1, "sha256:" + digest(1))])
    report = AuditReport(resolve_lineage(records), spool, "p", ("store",), "t0", "t1")
    page = tmp_path / "lineage.html"
    write_report(report, page)
    return page


def test_lineage_graph_in_the_browser(tmp_path: Path) -> None:
    page = _lineage_report(tmp_path)
    dom = dump_dom(page)
    svg = dom.find("section", id="lineage").find("svg")
    nodes = {g.find("title").text(): g.attrs["class"] for g in svg.find_all("g", class_="node")}
    assert nodes == {
        f"data{SCRIPT}": "node dataset",
        "store/base": "node model verified",
        "store/ft-a": "node model verified",
        "store/ft-b": "node model verified",
        "store/bad-base": "node model rejected",
        "store/ft-of-bad": "node model rejected",  # lineage
        f"store/ft-{IMG}": "node model verified",
        "base": "node external",
    }
    edges = svg.find_all("path", class_="edge")
    assert len(edges) == 6 + 4  # a dataset edge per model, and four base edges
    links = {a.attrs["href"] for a in svg.find_all("a")}
    assert links == {f"#m-{i}" for i in range(6)}
    # Each column's nodes sit at one x, a fine-tune right of its base.
    x = {
        g.find("title").text(): int(g.find("rect").attrs["x"])
        for g in svg.find_all("g", class_="node")
    }
    assert x[f"data{SCRIPT}"] < x["store/base"] < x["store/ft-a"] == x["store/ft-b"]
    assert not dom.find_all("img")
    row = next(r for r in _rows(dom) if _model(r) == "store/ft-of-bad")
    assert row.attrs["data-verdict"] == "rejected"
    assert "LineageError" in row.find("td", **{"data_k": "reason"}).text()
    image = screenshot(page, tmp_path / "lineage.png", "#lineage", size="1280,1200")
    assert len(image.colours()) > 100
    blue = sum(1 for (r, g, b) in image.colours(step=2) if (r, g, b) == (219, 234, 254))
    assert blue > 0  # a dataset node's fill


def test_lineage_of_a_real_store_with_provenance(
    tmp_path: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    from tests.test_audit import ProvenanceStore

    key, other = keys.load_private_key(keypair[0]), keys.load_private_key(other_keypair[0])
    store = ProvenanceStore(tmp_path / "store", key, other)
    page = tmp_path / "report.html"
    result = _audit(store.root, "--key", keypair[1], "--html", page, "-q")
    assert result.returncode == 1, result.stderr
    dom = dump_dom(page)
    svg = dom.find("section", id="lineage").find("svg")
    nodes = {g.find("title").text(): g.attrs["class"] for g in svg.find_all("g", class_="node")}
    assert nodes == {
        "dataset": "node dataset",
        str(store.base): "node model verified",
        str(store.fine_tune): "node model verified",
        str(store.bad_base): "node model rejected",
        str(store.bad_fine_tune): "node model rejected",
        # Not drawn: a provenance about another model (mismatched), and one
        # that names no dataset or base model (untrusted-provenance).
    }
    # The claims of a model that did not verify are drawn dashed.
    claimed = [p for p in svg.find_all("path", class_="edge") if "claimed" in p.attrs["class"]]
    assert len(claimed) == 1
    row = next(r for r in _rows(dom) if _model(r) == str(store.base))
    panel = dom.find("article", id=row.find("a").attrs["href"][1:])
    text = panel.text()
    assert "Provenance" in text
    assert "train.py" in text
    assert '{"lr": 0.001}' in text
