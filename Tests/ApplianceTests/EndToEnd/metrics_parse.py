#!/usr/bin/env python3
"""Parses a Prometheus text exposition with prometheus_client's own parser (Debian's
python3-prometheus-client), as a Prometheus server would scrape it.

  metrics_parse.py FILE   prints JSON: {"families": {name: type}, "samples": {"name{a=b,...}": value}}
                          exits 1 with the parser's error if the text does not parse
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    families, samples = {}, {}
    try:
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
    except Exception as error:  # the parser's ValueError names the bad line
        print(f"does not parse: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"families": families, "samples": samples}))


if __name__ == "__main__":
    main()
