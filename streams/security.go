package streams

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// The security of a process's Kafka connections is a property of the
// cluster its addresses name, not of each client: the command that
// parses the Kafka flags (platform/cli) registers it once with Secure,
// and every client that dials those addresses through Options or Dial
// connects with it. So the dozen packages that dial Kafka, each with a
// Brokers field in its Config, need no security field of their own, and
// none can forget it. Clients dialling other addresses (another cluster,
// the embedded broker of a test running beside a secured one) are not
// affected.
var security struct {
	mu     sync.RWMutex
	byAddr map[string]secured
}

type secured struct {
	cfg  kafkaauth.Config
	opts []kgo.Opt
}

// Secure makes every client this process dials to brokers connect as cfg
// says. It fails, naming the field or file, when cfg is wrong (a missing
// CA, an unknown mechanism).
func Secure(brokers []string, cfg kafkaauth.Config) error {
	opts, err := cfg.Options()
	if err != nil {
		return fmt.Errorf("kafka security: %w", err)
	}
	security.mu.Lock()
	defer security.mu.Unlock()
	if security.byAddr == nil {
		security.byAddr = map[string]secured{}
	}
	for _, b := range brokers {
		security.byAddr[b] = secured{cfg: cfg, opts: opts}
	}
	return nil
}

// SecurityOf is the security Secure registered for brokers (the first
// one registered), the zero Config for plaintext.
func SecurityOf(brokers []string) kafkaauth.Config { return securedOf(brokers).cfg }

func securedOf(brokers []string) secured {
	security.mu.RLock()
	defer security.mu.RUnlock()
	for _, b := range brokers {
		if s, ok := security.byAddr[b]; ok {
			return s
		}
	}
	return secured{}
}

// Sentinels of Dial's errors when the brokers answer but refuse the
// connection's security.
var (
	// ErrKafkaAuth: SASL failed (a mechanism the brokers do not enable,
	// a wrong password, an unknown user, a token refused).
	ErrKafkaAuth = errors.New("kafka refused the SASL authentication")
	// ErrKafkaTLS: TLS failed (TLS to a plaintext listener or the
	// reverse, a certificate not signed by the CA, a name mismatch).
	ErrKafkaTLS = errors.New("kafka TLS failed")
)

// explain classifies a dial error with what the client tried; final
// reports whether retrying cannot help (a refused password stays
// refused).
func explain(err error, brokers []string, cfg kafkaauth.Config) (wrapped error, final bool) {
	at := strings.Join(brokers, ",")
	var (
		opErr    *net.OpError
		remote   *net.OpError
		eof      *kgo.ErrFirstReadEOF
		hdr      tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		alert    tls.AlertError
	)
	switch {
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("%w: the brokers at %s do not enable SASL mechanism %s (%s): %v", ErrKafkaAuth, at, cfg.SASL.Mechanism, cfg, err), true
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kafkaauth.ErrTokenRefused):
		return fmt.Errorf("%w: the brokers at %s refused %s (a wrong password, an unknown user or a refused token): %v", ErrKafkaAuth, at, cfg, err), true
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return fmt.Errorf("%w: the brokers' certificate at %s is not trusted (%s; check tls.ca_file and tls.server_name): %v", ErrKafkaTLS, at, cfg, err), true
	case errors.As(err, &hdr) && cfg.TLS.On():
		return fmt.Errorf("%w: the brokers at %s answered TLS in plaintext: is this a plaintext listener? (%s): %v", ErrKafkaTLS, at, cfg, err), true
	case errors.As(err, &alert), errors.As(err, &remote) && remote.Op == "remote error":
		// A TLS alert from the broker (crypto/tls reports a received
		// alert as an OpError "remote error").
		return fmt.Errorf("%w: the brokers at %s ended the TLS handshake (a client certificate required or refused?) (%s): %v", ErrKafkaTLS, at, cfg, err), true
	case errors.As(err, &eof) && cfg.TLS.On():
		return fmt.Errorf("%w: the brokers at %s closed the connection during the TLS handshake: is this a plaintext listener? (%s): %v", ErrKafkaTLS, at, cfg, err), false
	case errors.Is(err, io.EOF) && !errors.As(err, &eof) && cfg.SASL.Mechanism != "":
		// The broker answered, then closed the connection: after the
		// version exchange comes SASL, and some brokers close on a
		// refused password rather than answer with an error.
		return fmt.Errorf("%w: the brokers at %s closed the connection during SASL authentication as %s (a wrong password or an unknown user?): %v", ErrKafkaAuth, at, cfg, err), false
	case cfg.TLS.On() && errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &opErr) && opErr.Op == "dial"):
		// The TCP connection was made (no dial error) but the handshake
		// never finished: a plaintext listener waits for a request the
		// size the ClientHello's first bytes spell.
		return fmt.Errorf("%w: no TLS handshake with the brokers at %s within the dial timeout: is this a plaintext listener? (%s): %v", ErrKafkaTLS, at, cfg, err), false
	case errors.As(err, &eof):
		return fmt.Errorf("%w: the brokers at %s closed a %s connection at once: do they want TLS or SASL?: %v", ErrKafkaTLS, at, cfg, err), false
	}
	return err, false
}

// embeddedSecurity makes the embedded broker's listener TLS (with a
// certificate) and SASL (with users), for tests of the secured path.
type embeddedSecurity struct {
	tls   *tls.Config
	users [][3]string // mechanism, user, password
	acls  []kfake.Opt // users with ACLs
}

// WithTLS makes the embedded broker's listener TLS with the certificate
// in certFile and keyFile (PEM). A non-empty clientCAFile requires
// clients to present a certificate signed by it.
func WithTLS(certFile, keyFile, clientCAFile string) (EmbeddedOpt, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("embedded broker TLS: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		cc, err := kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: clientCAFile}}.TLSConfig()
		if err != nil {
			return nil, fmt.Errorf("embedded broker TLS: %w", err)
		}
		tc.ClientCAs, tc.ClientAuth = cc.RootCAs, tls.RequireAndVerifyClientCert
	}
	return func(c *embeddedCfg) { c.sec.tls = tc }, nil
}

// WithSASLUser makes the embedded broker require SASL and accept user,
// a superuser, with password over mechanism (PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512).
func WithSASLUser(mechanism, user, password string) EmbeddedOpt {
	return func(c *embeddedCfg) { c.sec.users = append(c.sec.users, [3]string{mechanism, user, password}) }
}

// WithACLUser adds a user that is not a superuser, allowed only what acls
// allow, and makes the broker authorise every request by ACLs, as a Kafka
// broker with an authorizer does.
func WithACLUser(mechanism, user, password string, acls ...kfake.ACL) EmbeddedOpt {
	return func(c *embeddedCfg) {
		c.sec.acls = append(c.sec.acls, kfake.User(mechanism, user, password, acls...))
	}
}

func (s embeddedSecurity) opts() []kfake.Opt {
	var out []kfake.Opt
	if s.tls != nil {
		out = append(out, kfake.TLS(s.tls))
	}
	if len(s.users) > 0 || len(s.acls) > 0 {
		out = append(out, kfake.EnableSASL())
		for _, u := range s.users {
			out = append(out, kfake.Superuser(u[0], u[1], u[2]))
		}
	}
	if len(s.acls) > 0 {
		out = append(append(out, kfake.EnableACLs()), s.acls...)
	}
	return out
}

// SecurityOptions are the franz-go options of the security Secure
// registered for brokers (none for plaintext), for a client made without
// Options.
func SecurityOptions(brokers []string) []kgo.Opt { return securedOf(brokers).opts }

// probeTLS reports whether the listener at one of brokers completes a TLS
// handshake: a client that does not speak TLS learns why a broker's
// answers make no sense to it (Kafka answers a plaintext request on a
// TLS listener with a TLS alert). The handshake checks no certificate
// and nothing is sent after it.
func probeTLS(ctx context.Context, brokers []string) (string, bool) {
	for _, b := range brokers {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := (&net.Dialer{}).DialContext(pctx, "tcp", b)
		if err == nil {
			tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a probe of the protocol, not a connection
			err = tc.HandshakeContext(pctx)
			tc.Close()
		}
		cancel()
		if err == nil {
			return b, true
		}
	}
	return "", false
}
