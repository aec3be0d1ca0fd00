"""test_check_layers.py - scripts/check-layers.py on tiny fake trees (`make layers`).

A good tree passes; an upward include, a peer include, a folder the map does not name, a
backend named outside the table of backends and a circle between the files of one folder
each fail, naming the file, the line and the layers (or the circle). Standard library only.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "check-layers.py")

MAP = """\
# Architecture

Some prose, and an unrelated block:

```
util -> not the map
```

```layers
util
store
store/sqlite store/pg
writer   # a comment
main.c
allow store/store.c store/backends.c -> store/sqlite store/pg
module writer/m writer/m_inside  # m_inside.h is m's private header
```
"""

GOOD = {
    "src/util/buf.h": "",
    "src/util/buf.c": '#include "util/buf.h"\n',
    "src/store/store.h": '#include "util/buf.h"\n#include <stdio.h>\n',
    "src/store/store.c": '#include "store/store.h"\n#include "store/sqlite/sqlite.h"\n',
    "src/store/sqlite/sqlite.h": '#include "store/store.h"\n',
    "src/store/sqlite/sqlite.c": '#include "sqlite.h"\n#include "llhttp.h"\n',
    "src/store/pg/pg.c": '#include "store/store.h"\n',
    "src/writer/a.h": '#include "store/store.h"\n',
    "src/writer/a.c": '#include "writer/a.h"\n#include "writer/b.h"\n',
    "src/writer/b.h": "",
    "src/writer/b.c": '#include "writer/b.h"\n',
    "src/main.c": '#include "writer/a.h"\n',
    # a module with a private header: m.c and m_load.c include m_inside.h, which includes m.h
    "src/writer/m.h": "",
    "src/writer/m_inside.h": '#include "writer/m.h"\n',
    "src/writer/m.c": '#include "writer/m.h"\n#include "writer/m_inside.h"\n',
}


class CheckLayers(unittest.TestCase):
    def run_on(self, files, map_text=MAP):
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, "docs"))
            with open(os.path.join(root, "docs", "architecture.md"), "w") as f:
                f.write(map_text)
            for rel, text in files.items():
                path = os.path.join(root, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(textwrap.dedent(text))
            p = subprocess.run(
                [sys.executable, SCRIPT, "--root", root],
                capture_output=True,
                text=True,
            )
        return p.returncode, p.stdout, p.stderr

    def test_good_tree_passes(self):
        rc, out, err = self.run_on(GOOD)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("layers: ok", out)

    def test_upward_include_fails_naming_file_line_and_layers(self):
        files = dict(GOOD)
        files["src/store/store.c"] = '#include "store/store.h"\n\n#include "writer/a.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("src/store/store.c:3: store includes writer/a.h (writer)", out)
        self.assertIn("writer is above store", out)

    def test_relative_include_is_resolved_beside_the_file(self):
        files = dict(GOOD)
        files["src/util/buf.c"] = '#include "buf.h"\n#include "../writer/b.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("src/util/buf.c:2: util includes writer/b.h (writer)", out)

    def test_peers_may_not_include_each_other(self):
        files = dict(GOOD)
        files["src/store/pg/pg.c"] = '#include "store/sqlite/sqlite.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("src/store/pg/pg.c:1: store/pg includes store/sqlite/sqlite.h", out)
        self.assertIn("a peer of store/pg", out)

    def test_backend_only_from_the_table_of_backends(self):
        files = dict(GOOD)
        files["src/store/pool.c"] = '#include "store/pg/pg.h"\n'
        files["src/store/pg/pg.h"] = ""
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("src/store/pool.c:1: store includes store/pg/pg.h (store/pg)", out)
        files = dict(GOOD)
        files["src/store/backends.c"] = '#include "store/sqlite/sqlite.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("src/store/backends.c, src/store/store.c do", out)

    def test_private_header_only_from_its_folder(self):
        files = dict(GOOD)
        files["src/store/sqlite/sqlite_internal.h"] = '#include "store/store.h"\n'
        files["src/store/sqlite/sqlite.c"] = '#include "store/sqlite/sqlite_internal.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 0, out)
        files["src/writer/b.c"] = '#include "store/sqlite/sqlite_internal.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn(
            "src/writer/b.c:1: includes store/sqlite/sqlite_internal.h, private to store/sqlite/", out
        )

    def test_unknown_folder_fails(self):
        files = dict(GOOD)
        files["src/extra/x.c"] = '#include "util/buf.h"\n'
        files["src/writer/c.c"] = '#include "extra/x.h"\n'
        files["src/extra/x.h"] = ""
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("src/extra/x.c: its folder is not in the layer map", out)
        self.assertIn("src/writer/c.c:1: includes extra/x.h", out)

    def test_two_file_circle_is_printed(self):
        files = dict(GOOD)
        files["src/writer/b.c"] = '#include "writer/b.h"\n#include "writer/a.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("circle in writer: writer/a -> writer/b -> writer/a", out)
        self.assertIn("src/writer/a.c:2 includes writer/b.h", out)
        self.assertIn("src/writer/b.c:2 includes writer/a.h", out)

    def test_longer_circle_through_headers_is_printed(self):
        files = dict(GOOD)
        files["src/writer/b.h"] = '#include "writer/c.h"\n'
        files["src/writer/c.h"] = ""
        files["src/writer/c.c"] = '#include "writer/c.h"\n#include "writer/a.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("circle in writer: writer/a -> writer/b -> writer/c -> writer/a", out)

    def test_circle_outside_a_declared_module_is_printed(self):
        files = dict(GOOD)
        files["src/writer/m.c"] += '#include "writer/b.h"\n'
        files["src/writer/b.c"] = '#include "writer/m_inside.h"\n'
        rc, out, _ = self.run_on(files)
        self.assertEqual(rc, 1)
        self.assertIn("circle in writer: writer/b -> writer/m+writer/m_inside -> writer/b", out)

    def test_private_header_is_a_circle_unless_the_map_says_module(self):
        no_module = "".join(l for l in MAP.splitlines(True) if not l.startswith("module "))
        rc, out, _ = self.run_on(GOOD, map_text=no_module)
        self.assertEqual(rc, 1)
        self.assertIn("circle in writer: writer/m -> writer/m_inside -> writer/m", out)

    def test_module_without_why_is_an_error(self):
        rc, _, err = self.run_on(GOOD, map_text=MAP.replace("  # m_inside.h is m's private header", ""))
        self.assertEqual(rc, 2)
        self.assertIn("a module says why", err)

    def test_map_without_block_is_an_error(self):
        rc, _, err = self.run_on(GOOD, map_text="# Architecture\n\nno map here\n")
        self.assertEqual(rc, 2)
        self.assertIn("no ```layers block", err)


if __name__ == "__main__":
    unittest.main()
