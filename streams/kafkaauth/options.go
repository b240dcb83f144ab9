package kafkaauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TokenCommandTimeout bounds one run of sasl.token_command.
const TokenCommandTimeout = 10 * time.Second

// Options are the franz-go options that make a client connect as c
// says. Files are read now, so a missing CA or an unreadable key fails
// start-up naming the file; the client certificate, the password file
// and the token file are read again when they change.
func (c Config) Options() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if c.TLS.On() {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL.Mechanism != "" {
		m, err := c.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// TLSConfig is the tls.Config of c.TLS (nil when TLS is off), for
// clients other than franz-go's.
func (c Config) TLSConfig() (*tls.Config, error) {
	if !c.TLS.On() {
		return nil, nil
	}
	return c.TLS.config()
}

func (t TLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		kp := &keyPair{cert: t.CertFile, key: t.KeyFile}
		if _, err := kp.load(); err != nil {
			return nil, err
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.load() }
	}
	return tc, nil
}

// keyPair is a client certificate read again when either file changes
// (a certificate manager renews it in place).
type keyPair struct {
	cert, key string
	mu        sync.Mutex
	stamp     string
	last      *tls.Certificate
}

func (k *keyPair) load() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	stamp := fileStamp(k.cert) + "|" + fileStamp(k.key)
	if k.last != nil && stamp == k.stamp {
		return k.last, nil
	}
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %s and tls.key_file %s: %w", k.cert, k.key, err)
	}
	k.last, k.stamp = &c, stamp
	return k.last, nil
}

// fileStamp changes when a file is rewritten or replaced.
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d.%d", fi.ModTime().UnixNano(), fi.Size())
}

func (s SASL) mechanism() (sasl.Mechanism, error) {
	switch s.Mechanism {
	case OAuthBearer:
		tok := s.tokenSource()
		if _, err := tok(context.Background()); err != nil {
			return nil, err
		}
		return refusable{oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
			t, err := tok(ctx)
			return oauth.Auth{Token: t}, err
		})}, nil
	}
	pw := &secretFile{path: s.PasswordFile, value: s.Password, what: "sasl.password_file"}
	if _, err := pw.read(); err != nil {
		return nil, err
	}
	switch s.Mechanism {
	case Plain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			p, err := pw.read()
			return plain.Auth{User: s.Username, Pass: p}, err
		}), nil
	case ScramSHA256, ScramSHA512:
		auth := func(context.Context) (scram.Auth, error) {
			p, err := pw.read()
			return scram.Auth{User: s.Username, Pass: p}, err
		}
		if s.Mechanism == ScramSHA256 {
			return scram.Sha256(auth), nil
		}
		return scram.Sha512(auth), nil
	}
	return nil, fmt.Errorf("sasl.mechanism %q is not one of %s", s.Mechanism, strings.Join(Mechanisms, ", "))
}

// ErrTokenRefused is the broker answering an OAUTHBEARER token with an
// error (RFC 7628 3.2.2: a JSON status instead of success), which
// franz-go reports as unexpected data.
var ErrTokenRefused = errors.New("the broker refused the OAUTHBEARER token")

// refusable is an OAUTHBEARER mechanism whose sessions report the
// broker's error answer as ErrTokenRefused, with the broker's words.
type refusable struct{ sasl.Mechanism }

func (m refusable) Authenticate(ctx context.Context, host string) (sasl.Session, []byte, error) {
	s, first, err := m.Mechanism.Authenticate(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	return refusableSession{s}, first, nil
}

type refusableSession struct{ sasl.Session }

func (s refusableSession) Challenge(resp []byte) (bool, []byte, error) {
	done, out, err := s.Session.Challenge(resp)
	if err != nil && len(resp) > 0 {
		return done, out, fmt.Errorf("%w: %s", ErrTokenRefused, resp)
	}
	return done, out, err
}

// tokenSource returns OAUTHBEARER's token from the file (read again when
// it changes) or the command.
func (s SASL) tokenSource() func(context.Context) (string, error) {
	if s.TokenFile != "" {
		f := &secretFile{path: s.TokenFile, what: "sasl.token_file"}
		return func(context.Context) (string, error) { return f.read() }
	}
	argv := strings.Fields(s.TokenCommand)
	return func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, TokenCommandTimeout)
		defer cancel()
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("sasl.token_command %s: %w: %s", argv[0], err, strings.TrimSpace(stderr.String()))
		}
		tok := strings.TrimSpace(string(out))
		if tok == "" {
			return "", fmt.Errorf("sasl.token_command %s printed no token", argv[0])
		}
		return tok, nil
	}
}

// secretFile is a secret given inline (value) or in a file read again
// when it changes; surrounding whitespace (a trailing newline) is not
// part of it.
type secretFile struct {
	path, value, what string
	mu                sync.Mutex
	stamp             string
}

var errEmptySecret = errors.New("is empty")

func (f *secretFile) read() (string, error) {
	if f.path == "" {
		return f.value, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := fileStamp(f.path); st == f.stamp && f.value != "" {
		return f.value, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s %s %w", f.what, f.path, errEmptySecret)
	}
	f.value, f.stamp = v, fileStamp(f.path)
	return v, nil
}
