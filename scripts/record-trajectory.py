"""Record tests/data/trajectory.json: the CPU engine's numbers for the cases of
tests/trajectory.py, which tests/test_trajectory.py then checks bit for bit.

Run it only on a commit whose numbers are right (before a restructuring, or
after a change meant to alter them, saying why in the commit), after
`bash scripts/dev-build.sh`:

    PYTHONPATH=$PWD python scripts/record-trajectory.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import trajectory  # noqa: E402


def main():
    cases = {}
    for name in trajectory.CASES:
        cases[name] = dict(config=trajectory.case_config(name), **trajectory.run(name))
        print(f"{name}: ELBO after the epoch {float.fromhex(cases[name]['final_score_elbo']):.6f}")
    data = {"format": trajectory.FORMAT, "environment": trajectory.environment(), "cases": cases}
    os.makedirs(os.path.dirname(trajectory.PATH), exist_ok=True)
    with open(trajectory.PATH, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {trajectory.PATH}")


if __name__ == "__main__":
    main()
