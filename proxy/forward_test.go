package proxy

import "testing"

func TestConnectionListed(t *testing.T) {
	for _, tc := range []struct {
		conn []string
		want bool // names headers to drop
	}{
		{nil, false},
		{[]string{"keep-alive"}, false},
		{[]string{"Keep-Alive, close"}, false},
		{[]string{"close", " keep-alive ,"}, false},
		{[]string{"X-Private-Hop"}, true},
		{[]string{"keep-alive, X-Private-Hop"}, true},
		{[]string{"close", "upgrade"}, true},
		{[]string{"keep-alive-x"}, true},
	} {
		if got := connectionListed(tc.conn) != nil; got != tc.want {
			t.Errorf("connectionListed(%q) names headers: %v, want %v", tc.conn, got, tc.want)
		}
	}
}
