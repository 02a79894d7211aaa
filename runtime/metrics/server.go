package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is the path the Server serves the metrics on.
const MetricsPath = "/metrics"

// Server serves a Prometheus registry over HTTP on MetricsPath.
type Server struct {
	srv  *http.Server
	addr string
	done chan struct{} // closed when the serving goroutine returns
	err  error         // serving error other than http.ErrServerClosed; read after done

	closeOnce sync.Once
	closeErr  error
}

// Serve listens on addr (host:port, e.g. ":9090", or "127.0.0.1:0" for a
// port the system picks) and serves g on MetricsPath in a goroutine of its
// own until Close. Use [Server.Addr] for the address actually bound.
func Serve(addr string, g prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %q for prometheus metrics: %w (choose another --metrics-addr, or leave it empty to serve none)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
		},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on, with the port it was
// given or the one the system picked.
func (s *Server) Addr() string { return s.addr }

// URL returns the address of the metrics page, e.g.
// "http://127.0.0.1:9090/metrics".
func (s *Server) URL() string {
	host, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		return "http://" + s.addr + MetricsPath
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + MetricsPath
}

// Close stops the server: it stops accepting connections, lets scrapes in
// progress finish until ctx is done, then closes what remains. It returns an
// error the server stopped with, if any. Calling Close again does nothing
// and returns the first call's result.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		err := s.srv.Shutdown(ctx)
		if err != nil {
			s.srv.Close()
		}
		<-s.done
		s.closeErr = errors.Join(err, s.err)
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("metrics: stop prometheus server on %s: %w", s.addr, s.closeErr)
		}
	})
	return s.closeErr
}
