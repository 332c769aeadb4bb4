"""Print how the pure API of every algorithm handles bad inputs (markdown table).

Run: ``python benchmarks/bad_input_table.py`` (add ``--messages`` for the error of every cell).
Cells: ``ok`` = refused with an exception naming the leaf, nothing changed; ``no-leaf`` = refused
but the message does not name the leaf (or has none to name); ``ACCEPTED`` = no error;
``at update`` = an integer/bool parameter accepted by ``init``, refused at the first update;
``raw`` = an ``AttributeError``/``NotImplementedError`` from deep inside (no clear message);
``CHANGED`` = an error after a parameter or state changed; ``as torch`` = a sparse gradient
accepted where ``torch.optim`` accepts it too; ``-`` = not applicable.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._bad_inputs import ALGORITHMS, KINDS, TORCH_ACCEPTS_SPARSE, applicable, outcome

SHORT = {
    "refused": "ok",
    "refused (no leaf named)": "no-leaf",
    "raw error": "raw",
    "refused at update": "at update",
    "ACCEPTED": "ACCEPTED",
    "CHANGED": "CHANGED",
}


def main() -> None:
    show = "--messages" in sys.argv
    names = list(ALGORITHMS)
    print("| input | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    messages = []
    for kind in KINDS:
        cells = []
        for name in names:
            if not applicable(name, kind):
                cells.append("-")
                continue
            verdict, msg = outcome(name, kind, index=1)
            cell = SHORT[verdict]
            if kind == "grad sparse" and verdict == "ACCEPTED" and name in TORCH_ACCEPTS_SPARSE:
                cell = "as torch"
            cells.append(cell)
            messages.append(f"{kind} / {name}: {verdict}: {msg[:160]}")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    if show:
        print()
        print("\n".join(messages))


if __name__ == "__main__":
    main()
