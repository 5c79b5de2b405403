"""Record tests/data/trajectory.json: the CPU engine's numbers for the cases of
tests/trajectory.py on each of its paths (instruction set and OpenBLAS kernel,
pinned), which tests/test_trajectory.py then checks bit for bit.

Run it only on a commit whose numbers are right (before a restructuring, or
after a change meant to alter them, saying why in the commit), after
`bash scripts/dev-build.sh`, on a CPU with AVX-512 so that every path is
recorded (a path this CPU cannot run keeps its earlier recording, if any):

    PYTHONPATH=$PWD python scripts/record-trajectory.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import trajectory  # noqa: E402


def main():
    old = {}
    if os.path.exists(trajectory.PATH):
        with open(trajectory.PATH, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("format") == trajectory.FORMAT:
            old = data["paths"]
    paths = {}
    for path in trajectory.PATHS:
        reason = trajectory.why_not_here(path)
        if reason:
            if path not in old:
                sys.exit(f"cannot record {path}: {reason}, and the file has no earlier recording of it")
            print(f"{path}: kept the earlier recording ({reason})")
            paths[path] = old[path]
            continue
        got = trajectory.run_pinned(path)
        if trajectory.path_of(got["environment"]) != path:
            sys.exit(f"pinned {trajectory.PATHS[path]}, but the run reports {got['environment']}")
        paths[path] = got
        scores = [float.fromhex(case["final_score_elbo"]) for case in got["cases"].values()]
        print(f"{path}: {len(scores)} cases, mean ELBO after the epoch {sum(scores) / len(scores):.6f}")
    data = {"format": trajectory.FORMAT, "build": trajectory.environment()["build"], "paths": paths}
    os.makedirs(os.path.dirname(trajectory.PATH), exist_ok=True)
    with open(trajectory.PATH, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {trajectory.PATH}")


if __name__ == "__main__":
    main()
