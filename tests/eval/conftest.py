"""Fixtures for the eval tests: a tiny polyglot repository (``benchmarks`` imports via pythonpath)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

# Three languages, each with documented definitions, a function with two callers and a
# file-level comment over a file that imports another one.
POLYGLOT: dict[str, str] = {
    "pkg/shapes.py": '''
        """Measuring outlines drawn on a flat drawing surface, with unit conversion."""

        from .units import to_metres


        def polygon_area(points):
            """Compute the surface enclosed by a closed loop of corner coordinates."""
            total = 0.0
            for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
                total += x1 * y2 - x2 * y1
            return abs(total) / 2


        def outline_length(points):
            """Add up the straight gaps between neighbouring corners around the loop."""
            pts = normalise_corners(points)
            return sum(_gap(a, b) for a, b in zip(pts, pts[1:] + pts[:1]))


        def _gap(a, b):
            """Euclidean separation between two coordinate pairs on the plane."""
            return ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5


        def normalise_corners(points):
            """Drop repeated neighbours so that every corner appears only once."""
            out = []
            for p in points:
                if not out or out[-1] != p:
                    out.append(to_metres(p))
            return out


        class Canvas:
            """A drawing board that remembers every outline placed upon it."""

            def __init__(self):
                self.items = []

            def place(self, points):
                """Store an outline after removing duplicated neighbouring corners."""
                self.items.append(normalise_corners(points))
        ''',
    "pkg/units.py": '''
        """Conversion between imperial and metric measurement systems for lengths."""

        FEET = 0.3048


        def to_metres(value):
            """Turn a length measured in feet into the international standard unit."""
            return value * FEET
        ''',
    "web/queue.js": """
        /**
         * A bounded waiting line that hands out jobs in arrival order.
         */

        const { pauseBriefly } = require('./timer');

        /**
         * Accept a new job unless the waiting line has reached its capacity.
         */
        function enqueueJob(queue, job) {
          if (queue.items.length >= queue.limit) return false;
          queue.items.push(job);
          return true;
        }

        /**
         * Remove the oldest job and wait a little before handing it over.
         */
        async function takeNextJob(queue) {
          await pauseBriefly(10);
          return queue.items.shift();
        }

        function drainAll(queue) {
          const out = [];
          while (queue.items.length) out.push(takeNextJob(queue));
          return out;
        }

        module.exports = { enqueueJob, takeNextJob, drainAll };
        """,
    "web/timer.js": """
        /**
         * Small helpers for waiting on the event loop without ever blocking it.
         */

        /**
         * Resolve a promise after the requested number of milliseconds has passed.
         */
        function pauseBriefly(ms) {
          return new Promise((resolve) => setTimeout(resolve, ms));
        }

        function retryLater(fn) {
          return pauseBriefly(50).then(fn);
        }

        module.exports = { pauseBriefly, retryLater };
        """,
    "native/ring.h": """
        #ifndef RING_H
        #define RING_H
        struct ring { char data[64]; int head; int tail; };
        #endif
        """,
    "native/ring.c": """
        /*
         * Circular byte storage that overwrites the oldest data once it is full.
         */

        #include "ring.h"

        /* Move a position forward by one slot, wrapping at the end of the buffer. */
        static int ring_step_forward(int pos)
        {
            return (pos + 1) % 64;
        }

        /*
         * Copy incoming bytes into the storage, dropping the oldest ones when full.
         */
        int ring_push_bytes(struct ring *r, const char *buf, int n)
        {
            for (int i = 0; i < n; i++) {
                r->data[r->head] = buf[i];
                r->head = ring_step_forward(r->head);
            }
            return n;
        }

        int ring_pop_byte(struct ring *r)
        {
            int c = r->data[r->tail];
            r->tail = ring_step_forward(r->tail);
            return c;
        }
        """,
}


def write_polyglot(root: Path) -> Path:
    for rel, text in POLYGLOT.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture
def polyglot(tmp_path: Path) -> Path:
    """A small Python + JavaScript + C source tree (not a git repository)."""
    return write_polyglot(tmp_path / "polyglot")
