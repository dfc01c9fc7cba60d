"""Go and Rust in the understanding kinds: definitions, doc comments, callers, imports."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from benchmarks.eval.corpus import (
    GO_EXCLUDED,
    GO_EXTENSIONS,
    RUST_EXCLUDED,
    RUST_EXTENSIONS,
    RepoSpec,
    _shipped_tree,
    materialize,
)
from benchmarks.eval.gorust import GoRust, doc_comment_above, rust_module_doc
from benchmarks.eval.understanding import candidates, scan

# A Go module with two packages (beds imports the root package under an alias) and a
# Rust crate with two modules; each has documented definitions, functions and methods
# with two callers, and a method called on a value that is not the receiver.
GO_RUST: dict[str, str] = {
    "go.mod": """
        module example.com/garden

        go 1.19
        """,
    "doc.go": """
        // Copyright 2024 The Garden Authors. All rights reserved.

        // Package garden tracks seed trays, watering rounds and the beds they fill.
        package garden
        """,
    "tray.go": """
        package garden

        import "fmt"

        // Tray holds a row of seedlings waiting to be planted out.
        type Tray struct {
            cells []string
        }

        // Describe prints every seedling label with its position in the row.
        func (t *Tray) Describe() {
            for i := range t.cells {
                fmt.Println(t.cellLabel(i))
            }
        }

        // cellLabel formats one numbered cell of the row for display.
        //
        //go:noinline
        func (t *Tray) cellLabel(i int) string {
            return fmt.Sprintf("%d: %s", i, t.cells[i])
        }

        // Summary counts the occupied cells and names the first one.
        func (t *Tray) Summary() string {
            return t.cellLabel(0) + countCells(t.cells)
        }

        // countCells reports how many cells of a row hold a seedling.
        func countCells(cells []string) string {
            return fmt.Sprint(len(cells))
        }

        // PlantOut moves the seedlings of a tray into the ground and empties it.
        func PlantOut(t *Tray) string {
            t.Refill()
            return countCells(t.cells)
        }

        // Refill tops the tray up with fresh compost before the next sowing.
        func (t *Tray) Refill() {}
        """,
    "beds/beds.go": """
        // Package beds lays seedlings from trays out into raised garden beds.
        package beds

        import (
            "strings"

            g "example.com/garden"
        )

        // Bed is one raised bed with the trays planted into it.
        type Bed struct {
            tray *g.Tray
        }

        // Fill moves every seedling of the tray into the bed, row by row.
        func (b *Bed) Fill() string {
            b.tray.Refill()
            return strings.ToUpper(g.PlantOut(b.tray))
        }

        // Replant empties the bed and plants the same seedlings again.
        func Replant(b *Bed) string {
            return g.PlantOut(b.tray)
        }
        """,
    "beds/beds_test.go": """
        package beds

        func TestReplant() { Replant(nil) }
        """,
    "src/lib.rs": """
        //! Summaries of plane figures for a survey report.
        //!
        //! [![badge]](https://example.invalid/badge)

        mod shapes;

        use crate::shapes::polygon_area;

        /// Report the enclosed surface of every outline, largest first.
        pub fn report_areas(outlines: &[Vec<(f64, f64)>]) -> Vec<f64> {
            let mut out: Vec<f64> = outlines.iter().map(|o| polygon_area(o)).collect();
            out.sort_by(|a, b| b.partial_cmp(a).unwrap());
            out
        }

        /// Add up the surfaces of all outlines into one total.
        pub fn total_area(outlines: &[Vec<(f64, f64)>]) -> f64 {
            outlines.iter().map(|o| shapes::polygon_area(o)).sum()
        }

        /// Turn every ring around so that its corners run the other way.
        pub fn reverse_rings(rings: &mut [shapes::Ring]) {
            for ring in rings.iter_mut() {
                ring.reverse_order();
            }
        }
        """,
    "src/shapes.rs": """
        //! Plane figures given as loops of corner points.

        /// Compute the surface enclosed by a closed loop of corner coordinates.
        #[inline]
        #[allow(
            clippy::many_single_char_names,
        )]
        pub fn polygon_area(points: &[(f64, f64)]) -> f64 {
            let n = points.len();
            let mut total = 0.0;
            for i in 0..n {
                let (x1, y1) = points[i];
                let (x2, y2) = points[(i + 1) % n];
                total += x1 * y2 - x2 * y1;
            }
            total.abs() / 2.0
        }

        // A plain comment is not a doc.
        fn helper_width() -> f64 {
            1.0
        }

        /// A ring of **corner points** that can be walked in either direction.
        #[derive(Debug, Clone)]
        pub struct Ring {
            points: Vec<(f64, f64)>,
        }

        impl Ring {
            /// Step to the neighbouring corner after the given position, wrapping at the end.
            pub fn next_corner(&self, i: usize) -> (f64, f64) {
                self.points[(i + 1) % self.points.len()]
            }

            /// Walk once around the loop and collect the distances between neighbours.
            pub fn edge_lengths(&self) -> Vec<f64> {
                (0..self.points.len())
                    .map(|i| distance(self.points[i], self.next_corner(i)))
                    .collect()
            }

            /// Check whether the loop closes back on its first corner.
            pub fn closes_cleanly(&self) -> bool {
                Self::next_corner(self, self.points.len() - 1) == self.points[0]
            }

            /// Flip the walking direction of the whole loop in place.
            pub fn reverse_order(&mut self) {
                self.points.reverse();
            }
        }

        fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
            ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn square_area() {
                let r = Ring { points: vec![] };
                r.edge_lengths();
                assert_eq!(polygon_area(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]), 0.5);
            }
        }
        """,
}


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture
def go_rust(tmp_path: Path) -> Path:
    src = _write(tmp_path / "src", GO_RUST)
    go = RepoSpec("go", ("",), f"dir:{src}", GO_EXTENSIONS, GO_EXCLUDED)
    rust = RepoSpec("rust", ("src",), f"dir:{src}", RUST_EXTENSIONS, RUST_EXCLUDED)
    spec = RepoSpec("go-rust", (), "parts", parts=(go, rust))
    return materialize(spec, tmp_path / "cache").path


def _by(cands: list[dict[str, Any]], key: str, value: object) -> dict[str, Any]:
    found = [c for c in cands if c["expected"][key] == value]
    assert len(found) == 1, (key, value, cands)
    return found[0]


def test_recipes_keep_go_mod_and_drop_tests(go_rust: Path) -> None:
    files = sorted(p.relative_to(go_rust).as_posix() for p in go_rust.rglob("*") if p.is_file())
    assert files == [
        "go/beds/beds.go",
        "go/doc.go",
        "go/go.mod",
        "go/tray.go",
        "rust/src/lib.rs",
        "rust/src/shapes.rs",
    ]


def test_go_and_rust_definitions_come_with_their_doc_comments(
    go_rust: Path, tmp_path: Path
) -> None:
    facts = scan(go_rust, tmp_path / "index")
    docs = {(d.language, d.qualname): d for d in facts.defs}
    label = docs[("go", "Tray.cellLabel")]
    assert (label.kind, label.line, label.start, label.end) == ("method", 20, 17, 22)
    assert label.sentence == "cellLabel formats one numbered cell of the row for display."
    assert docs[("go", "Tray")].sentence.startswith("Tray holds a row of seedlings")
    area = docs[("rust", "polygon_area")]
    # the doc sits above three lines of attributes
    assert (area.kind, area.line, area.start, area.end) == ("function", 8, 3, 17)
    assert area.sentence == ("Compute the surface enclosed by a closed loop of corner coordinates.")
    assert docs[("rust", "Ring")].sentence.startswith("A ring of **corner points**")
    assert docs[("rust", "Ring.next_corner")].kind == "method"
    assert docs[("rust", "helper_width")].sentence == ""  # a plain // comment is no doc

    cands = candidates(facts)["locate"]
    assert {c["expected"]["language"] for c in cands} == {"go", "rust"}
    q = _by(cands, "name", "Tray.cellLabel")
    assert q["question"] == "Where is the code that formats one numbered of the row for display?"
    assert (q["expected"]["path"], q["expected"]["start"]) == ("go/tray.go", 17)
    q = _by(cands, "name", "polygon_area")
    assert q["question"] == (
        "Where is the code that computes the surface enclosed by a closed loop of corner "
        "coordinates?"
    )


def test_go_and_rust_callers_are_resolved_call_sites(go_rust: Path, tmp_path: Path) -> None:
    cands = candidates(scan(go_rust, tmp_path / "index"))["impact"]
    got = {c["expected"]["function"]: c["expected"] for c in cands}
    # Refill and reverse_order are called on values that are not the receiver: not asked.
    assert set(got) == {"cellLabel", "countCells", "PlantOut", "polygon_area", "next_corner"}
    assert got["cellLabel"]["names"] == ["Describe", "Summary"]
    assert got["countCells"]["names"] == ["PlantOut", "Summary"]
    # through the import alias, from the other package
    assert got["PlantOut"]["names"] == ["Fill", "Replant"]
    assert got["PlantOut"]["paths"] == ["go/beds/beds.go"]
    fill = got["PlantOut"]["callers"][0]
    assert (fill["qualname"], fill["start"], fill["end"]) == ("Bed.Fill", 16, 19)
    # a `use`d name and a module path; the #[cfg(test)] module's call is left out
    assert got["polygon_area"]["names"] == ["report_areas", "total_area"]
    assert got["polygon_area"]["language"] == "rust"
    # self.next_corner() and Self::next_corner()
    assert got["next_corner"]["names"] == ["closes_cleanly", "edge_lengths"]


def test_go_and_rust_how_refs_are_the_package_or_the_modules_reached(
    go_rust: Path, tmp_path: Path
) -> None:
    cands = candidates(scan(go_rust, tmp_path / "index"))["how"]
    got = {c["expected"]["path"]: c for c in cands}
    assert set(got) == {"go/doc.go", "go/beds/beds.go", "rust/src/lib.rs", "rust/src/shapes.rs"}
    garden = got["go/doc.go"]
    assert garden["question"] == (
        "How does the code that tracks seed trays, watering rounds and the beds they fill work?"
    )
    assert garden["expected"]["paths"] == ["go/doc.go", "go/tray.go"]
    assert got["go/beds/beds.go"]["expected"]["paths"] == [
        "go/beds/beds.go",
        "go/doc.go",
        "go/tray.go",
    ]
    assert got["rust/src/lib.rs"]["expected"]["paths"] == ["rust/src/lib.rs", "rust/src/shapes.rs"]
    assert got["rust/src/shapes.rs"]["expected"]["paths"] == ["rust/src/shapes.rs"]


def test_doc_comment_readers() -> None:
    rust = [
        "/// First line of the doc.",
        "///",
        "/// ```",
        "/// let x = 1;",
        "/// ```",
        "#[derive(",
        "    Debug,",
        ")]",
        "pub struct S;",
    ]
    text, first = doc_comment_above(rust, 9, "rust")
    assert first == 1
    assert text == ["First line of the doc.", "", "", "", ""]
    assert doc_comment_above(["// plain", "fn f() {}"], 2, "rust") == ([], 2)
    go = ["// F does a thing.", "//go:generate stringer", "func F() {}"]
    assert doc_comment_above(go, 3, "go") == (["F does a thing."], 1)
    lines = ["// Licence text.", "", "#![no_std]", "//! # Title", "//! Real prose here.", "use x;"]
    assert rust_module_doc(lines) == ["", "Real prose here."]


def test_go_import_names_default_to_the_package_clause() -> None:
    repo = GoRust(
        {
            "go.mod": "module example.com/m/v2\n",
            "a.go": "package toml\n\nfunc Parse() {}\n",
            "cmd/x/main.go": 'package main\n\nimport "example.com/m/v2"\n\nfunc main() { toml.Parse() }\n',
        }
    )
    assert repo.aliases["cmd/x/main.go"] == {"toml": "example.com/m/v2"}
    sites = repo.call_sites("a.go", "function", "Parse", 3)
    assert sites is not None
    assert [(s.path, s.line) for s in sites] == [("cmd/x/main.go", 5)]
    assert repo.imports("cmd/x/main.go") == {"a.go"}


def test_debian_packages_ship_their_sources_under_usr_share(tmp_path: Path) -> None:
    crate = tmp_path / "usr/share/cargo/registry/clap-4.0.32"
    (crate / "src").mkdir(parents=True)
    assert _shipped_tree(tmp_path) == crate
    other = tmp_path / "o"
    # the module's only entry is a directory, but go.mod marks the module's root
    (other / "usr/share/gocode/src/github.com/spf13/cobra/doc").mkdir(parents=True)
    (other / "usr/share/gocode/src/github.com/spf13/cobra/go.mod").write_text("module x\n")
    assert _shipped_tree(other) == other / "usr/share/gocode/src/github.com/spf13/cobra"
    bare = tmp_path / "b/usr/share/gocode/src/gopkg.in/yaml.v3"
    bare.mkdir(parents=True)
    (bare / "yaml.go").write_text("package yaml\n")
    assert _shipped_tree(tmp_path / "b") == bare
    with pytest.raises(RuntimeError):
        _shipped_tree(tmp_path / "none")
