// Package metrics is what every Sluice process shares of its Prometheus
// metrics: the process's registry (with the Go runtime's and the
// process's standard collectors), the `/metrics` handler over it, a
// listener that serves it, and franz-go's client metrics (kprom) for any
// Kafka client. It is a leaf: the packages that count (gateway,
// replicas, replicas/models, autoscaler) export prometheus.Collectors of
// their own, and the commands register them here.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// AddrEnv names the environment variable that tells a replica process
// where to serve its metrics: host:port, port 0 for any free one. A node
// sets it for the replicas it starts (its metrics host, port 0); the
// replica reports the address it bound in its report on the status topic.
const AddrEnv = "SLUICE_METRICS_ADDR"

// Namespace prefixes every series the platform exports.
const Namespace = "sluice"

// NewRegistry returns a process's registry, holding the Go runtime's
// collector (go_*) and the process collector (process_*).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves g in the exposition format the scraper asks for; a
// collector's error is logged in the answer's place, not a 500, so one
// bad collector does not hide the others.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Server serves one registry's /metrics on its own listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
	err chan error
}

// Listen binds addr (host:port; port 0 picks a free one) and serves g
// at /metrics until Close.
func Listen(addr string, g prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g))
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, err: make(chan error, 1)}
	go func() { s.err <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on (the port chosen when 0
// was asked), as others reach it: an unspecified host (0.0.0.0, ::) is
// replaced by this machine's first non-loopback address, so that the
// address a replica reports can be scraped from elsewhere.
func (s *Server) Addr() string { return advertised(s.ln.Addr().(*net.TCPAddr), net.InterfaceAddrs) }

// advertised is addr with an unspecified IP replaced by the first
// non-loopback unicast address of addrs (IPv4 first); addr as it is when
// there is none.
func advertised(addr *net.TCPAddr, addrs func() ([]net.Addr, error)) string {
	if !addr.IP.IsUnspecified() {
		return addr.String()
	}
	ifs, err := addrs()
	if err != nil {
		return addr.String()
	}
	var v6 net.IP
	for _, a := range ifs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return net.JoinHostPort(n.IP.String(), strconv.Itoa(addr.Port))
		}
		if v6 == nil {
			v6 = n.IP
		}
	}
	if v6 != nil {
		return net.JoinHostPort(v6.String(), strconv.Itoa(addr.Port))
	}
	return addr.String()
}

// Close stops serving, bounded by ctx.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.err; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

var clients atomic.Int64

// Kafka returns the client option that exports a franz-go client's
// metrics (connections, bytes and records produced and fetched, buffered
// records; kprom's sluice_kgo_* series) to reg, labelled with the
// client's role (gateway, replica, ...) and a number that tells the
// process's clients apart. The series leave reg when the client closes.
func Kafka(reg prometheus.Registerer, role string) kgo.Opt {
	n := clients.Add(1)
	m := kprom.NewMetrics(Namespace, kprom.Registerer(prometheus.WrapRegistererWith(
		prometheus.Labels{"client": role + "-" + strconv.FormatInt(n, 10)}, reg)),
		kprom.Subsystem("kgo"))
	return kgo.WithHooks(m)
}
