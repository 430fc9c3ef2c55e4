// Package deploy holds the files that run OSS Gateway in production, and the
// tests that keep them true to the code:
//
//   - gateway.service: the hardened systemd unit;
//   - prometheus/scrape.yml and prometheus/alerts.yml: the scrape job and the
//     alert rules;
//   - grafana/oss-gateway.json: the Grafana dashboard;
//   - Dockerfile: a static, non-root container image;
//   - ECS.md: the guide for ECS instances behind an EIP or a Server Load
//     Balancer.
//
// The package has no Go code to import. Its tests parse every file above and
// check it against the gateway itself: metric and label names against the
// real Prometheus registry (server.NewMetrics), alert expressions against
// synthetic series, config snippets against the config parser, the unit with
// systemd-analyze, and the Dockerfile's build line by running it.
package deploy
