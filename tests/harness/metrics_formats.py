"""Scrapes a `/metrics` URL as a classic Prometheus scraper does (no `Accept`) and as Prometheus
itself does (asking for OpenMetrics first), parses each answer with PyPI prometheus-client's
parser for the format it claims, and prints one JSON report: per format, the content type and
every metric family with its type and sample count. A parse error fails the run.

    python metrics_formats.py <metrics url>
"""

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

# What Prometheus 2.x/3.x sends.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def scrape(url, accept, parse):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    # The URL is on loopback; no proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        content_type = response.headers["Content-Type"]
        body = response.read().decode()
    families = {f.name: {"type": f.type, "samples": len(f.samples)} for f in parse(body)}
    return {"content_type": content_type, "families": families}


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    url = sys.argv[1]
    print(json.dumps({
        "text": scrape(url, None, parse_text),
        "openmetrics": scrape(url, PROMETHEUS_ACCEPT, parse_openmetrics),
    }))


if __name__ == "__main__":
    main()
