// Package certs holds the TLS a server's listeners present: a
// certificate and key read from files and reloaded when they change (a
// new certificate is served to new connections, without a restart), and
// optionally the CA whose certificates clients must (or may) present.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ClientAuth is whether clients present certificates.
type ClientAuth string

// The client certificate policies, with a client CA file.
const (
	ClientRequire  ClientAuth = "require"  // every client presents one the CA signed
	ClientOptional ClientAuth = "optional" // a client may present one; if it does, the CA must have signed it
)

// Config names the files.
type Config struct {
	CertFile     string     // PEM certificate chain, leaf first
	KeyFile      string     // PEM private key of the leaf
	ClientCAFile string     // PEM CA certificates that sign client certificates (optional)
	ClientAuth   ClientAuth // with ClientCAFile; default require
}

// Validate names the missing or contradictory field.
func (c Config) Validate() error {
	switch {
	case c.CertFile == "" && c.KeyFile == "":
		return errors.New("tls: no certificate: give a certificate file and its key file")
	case c.CertFile == "":
		return fmt.Errorf("tls: key file %s given without a certificate file", c.KeyFile)
	case c.KeyFile == "":
		return fmt.Errorf("tls: certificate file %s given without its key file", c.CertFile)
	case c.ClientAuth != "" && c.ClientAuth != ClientRequire && c.ClientAuth != ClientOptional:
		return fmt.Errorf("tls: client auth %q: want require or optional", c.ClientAuth)
	case c.ClientAuth != "" && c.ClientCAFile == "":
		return fmt.Errorf("tls: client auth %s needs a client CA file", c.ClientAuth)
	}
	return nil
}

// Keeper serves the files' certificate, reloaded on change.
type Keeper struct {
	cfg   Config
	state atomic.Pointer[state]
	mu    sync.Mutex // guards mod
	mod   [3]stamp
}

// state is one version of the files.
type state struct {
	cert    tls.Certificate
	clients *x509.CertPool // nil: no client certificates asked
}

type stamp struct {
	at   time.Time
	size int64
}

// Load reads the files. A missing file, one holding no PEM certificate or
// key, or a key that does not match the certificate is an error naming
// the file and the reason.
func Load(cfg Config) (*Keeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ClientCAFile != "" && cfg.ClientAuth == "" {
		cfg.ClientAuth = ClientRequire
	}
	k := &Keeper{cfg: cfg}
	if _, err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Leaf is the certificate served now.
func (k *Keeper) Leaf() *x509.Certificate { return k.state.Load().cert.Leaf }

// ClientAuth is the client certificate policy ("" when none).
func (k *Keeper) ClientAuth() ClientAuth { return k.cfg.ClientAuth }

// Reload reads the files again if any changed since the last read. On
// an error the certificate in force stays (a certificate written before
// its key is taken once the key matches).
func (k *Keeper) Reload() (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var now [3]stamp
	for i, path := range []string{k.cfg.CertFile, k.cfg.KeyFile, k.cfg.ClientCAFile} {
		if path == "" {
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			return false, fmt.Errorf("tls: %w", err)
		}
		now[i] = stamp{fi.ModTime(), fi.Size()}
	}
	if k.state.Load() != nil && now == k.mod {
		return false, nil
	}
	k.mod = now // files that do not load are not read again until they change
	s, err := k.read()
	if err != nil {
		return false, err
	}
	k.state.Store(s)
	return true, nil
}

func (k *Keeper) read() (*state, error) {
	certPEM, err := os.ReadFile(k.cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(k.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s and key %s: %w", k.cfg.CertFile, k.cfg.KeyFile, err)
	}
	s := &state{cert: cert}
	if k.cfg.ClientCAFile != "" {
		caPEM, err := os.ReadFile(k.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls client CA: %w", err)
		}
		s.clients = x509.NewCertPool()
		if !s.clients.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("tls client CA %s: no PEM certificate in it", k.cfg.ClientCAFile)
		}
	}
	return s, nil
}

// DefaultPoll is how often Watch looks at the files.
const DefaultPoll = 2 * time.Second

// Watch reloads the files when they change, looking every poll, until
// ctx ends. Files that do not load are logged; the certificate in force
// stays.
func (k *Keeper) Watch(ctx context.Context, poll time.Duration, log *slog.Logger) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch changed, err := k.Reload(); {
		case err != nil:
			log.Error("tls files not reloaded; the previous certificate stays in force", "cert", k.cfg.CertFile, "err", err)
		case changed:
			leaf := k.Leaf()
			log.Info("tls certificate reloaded", "cert", k.cfg.CertFile, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
		}
	}
}

// ServerConfig is the TLS configuration of a listener offering the
// application protocols next (ALPN, e.g. h2 and http/1.1): each
// handshake takes the certificate and client CA in force.
func (k *Keeper) ServerConfig(next ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: next,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s := k.state.Load()
			c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: next, Certificates: []tls.Certificate{s.cert}}
			if s.clients != nil {
				c.ClientCAs = s.clients
				c.ClientAuth = tls.RequireAndVerifyClientCert
				if k.cfg.ClientAuth == ClientOptional {
					c.ClientAuth = tls.VerifyClientCertIfGiven
				}
			}
			return c, nil
		},
	}
}
