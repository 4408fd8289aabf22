#!/usr/bin/env python3
"""Summarize an Autobahn|Testsuite index.json: counts per section, and every case whose
behavior is not OK/INFORMATIONAL or whose close behavior is not OK.

Three cases (7.1.6, 7.13.1, 7.13.2) are informational by the suite's own definition: its code
sets both behavior and behaviorClose to INFORMATIONAL whatever the implementation does. A
close behavior of INFORMATIONAL is therefore accepted only together with an INFORMATIONAL
behavior, and such cases are listed separately.

Usage: autobahn_summary.py reports/server/index.json
Exit status: 0 when every case passed, 1 otherwise (2 if the report is missing or empty).
"""
import json
import sys
from collections import Counter, defaultdict

PASS = {"OK", "INFORMATIONAL"}


def case_key(case_id):
    return tuple(int(p) for p in case_id.split("."))


def main(path):
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("cannot read %s: %s" % (path, e))
        return 2
    failed = 0
    total = 0
    for agent, cases in sorted(index.items()):
        sections = defaultdict(Counter)
        bad = []
        informational = []
        for case_id in sorted(cases, key=case_key):
            result = cases[case_id]
            behavior = result.get("behavior")
            close = result.get("behaviorClose")
            section = case_id.split(".")[0]
            sections[section][behavior] += 1
            row = (case_id, behavior, close, result.get("remoteCloseCode"))
            if behavior == "INFORMATIONAL" and close == "INFORMATIONAL":
                informational.append(row)
            elif behavior not in PASS or close != "OK":
                bad.append(row)
        total += len(cases)
        print("agent %s: %d cases" % (agent, len(cases)))
        for section in sorted(sections, key=int):
            counts = ", ".join("%s %d" % kv for kv in sorted(sections[section].items()))
            print("  section %-3s %s" % (section, counts))
        for case_id, behavior, close, code in informational:
            print("  informational %-8s (by the suite's definition) remoteCloseCode=%s" % (case_id, code))
        for case_id, behavior, close, code in bad:
            print("  NOT OK %-8s behavior=%s close=%s remoteCloseCode=%s" % (case_id, behavior, close, code))
        failed += len(bad)
    if total == 0:
        print("no cases in %s" % path)
        return 2
    print("%d passed, %d failed" % (total - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "reports/server/index.json"))
