package server

import (
	"errors"
	"net"
	"sync"
	"time"
)

// handoffListener lets a succession of http.Servers serve one socket. The
// timeouts and header limit of an http.Server cannot change while it
// serves, so a reload that changes them starts a new server on a new view
// of the same socket and shuts the old one down gracefully: the socket
// never closes, no connection attempt is refused, and requests already
// running finish on the old server.
type handoffListener struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{} // closed when the socket stops accepting
	err   error         // why, once done is closed
}

func newHandoffListener(ln net.Listener) *handoffListener {
	h := &handoffListener{ln: ln, conns: make(chan net.Conn), done: make(chan struct{})}
	go h.acceptLoop()
	return h
}

// acceptLoop accepts for every view, backing off on temporary errors as
// http.Server.Serve does.
func (h *handoffListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := h.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Temporary() { // as net/http itself checks
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			h.err = err
			close(h.done)
			return
		}
		delay = 0
		select {
		case h.conns <- c:
		case <-h.done:
			c.Close()
			return
		}
	}
}

// view returns a listener for one http.Server. Closing it (as Shutdown
// does) stops that server's accepting, not the socket's.
func (h *handoffListener) view() net.Listener {
	return &handoffView{h: h, closed: make(chan struct{})}
}

// Close closes the socket itself, for the final shutdown.
func (h *handoffListener) Close() error { return h.ln.Close() }

type handoffView struct {
	h      *handoffListener
	closed chan struct{}
	once   sync.Once
}

func (v *handoffView) Accept() (net.Conn, error) {
	select {
	case <-v.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-v.h.conns:
		select {
		case <-v.closed:
			// Taken as this view closed: the next server gets it.
			go v.h.requeue(c)
			return nil, net.ErrClosed
		default:
			return c, nil
		}
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.h.done:
		return nil, v.h.err
	}
}

// requeue hands a connection to whichever view accepts next.
func (h *handoffListener) requeue(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.done:
		c.Close()
	}
}

func (v *handoffView) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

func (v *handoffView) Addr() net.Addr { return v.h.ln.Addr() }
