// Package browsertest holds the gateway's real-browser test: headless
// Chromium loads pages from loopback origins and checks what a browser, not
// an HTTP client, makes of the gateway's CORS, Referer and
// Content-Disposition answers. It has no code of its own; everything is in
// the _test.go files. See browser_test.go.
package browsertest
