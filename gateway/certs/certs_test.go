package certs

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/gateway/certs/certstest"
)

// Missing files, a key of another certificate, a file holding no PEM
// and contradictory settings are refused naming the file and why.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", "localhost")
	_, other := ca.Issue(t, dir, "other", "localhost")
	junk := dir + "/junk.pem"
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{CertFile: dir + "/nope.pem", KeyFile: key}, "nope.pem: no such file"},
		{Config{CertFile: cert, KeyFile: dir + "/nope-key.pem"}, "nope-key.pem: no such file"},
		{Config{CertFile: cert, KeyFile: other}, "private key does not match public key"},
		{Config{CertFile: junk, KeyFile: key}, "junk.pem"},
		{Config{CertFile: cert}, "given without its key file"},
		{Config{KeyFile: key}, "given without a certificate file"},
		{Config{CertFile: cert, KeyFile: key, ClientCAFile: junk}, "junk.pem: no PEM certificate"},
		{Config{CertFile: cert, KeyFile: key, ClientAuth: ClientOptional}, "needs a client CA file"},
		{Config{CertFile: cert, KeyFile: key, ClientCAFile: ca.File, ClientAuth: "maybe"}, `client auth "maybe"`},
	} {
		if _, err := Load(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// serve accepts TLS connections with k's configuration until the
// listener closes, completing each handshake.
func serve(t *testing.T, k *Keeper) string {
	l, err := tls.Listen("tcp", "127.0.0.1:0", k.ServerConfig("h2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	return l.Addr().String()
}

func dial(addr string, roots *x509.CertPool, client ...tls.Certificate) (*x509.Certificate, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if len(client) > 0 {
		// Sent even when the server names other CAs (Certificates would
		// hold it back).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &client[0], nil }
	}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// TLS 1.3 reports a refused client certificate on the first read.
	if _, err := c.Read(make([]byte, 1)); err != nil && strings.Contains(err.Error(), "certificate") {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// A certificate rewritten under a running listener is served to the
// next connection; a half-written rotation (a key of another
// certificate) keeps the old one in force.
func TestRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", "localhost")
	k, err := Load(Config{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, k)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	first, err := dial(addr, roots)
	if err != nil {
		t.Fatal(err)
	}
	// A new certificate, its key not yet written: refused, old one stays.
	next := certstest.NewCA(t, dir, "next")
	cert2, key2 := next.Issue(t, dir, "server2", "localhost")
	data, _ := os.ReadFile(cert2)
	if err := os.WriteFile(cert, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Reload(); err == nil {
		t.Fatal("a certificate without its key reloaded")
	}
	if got, err := dial(addr, roots); err != nil || !got.Equal(first) {
		t.Fatalf("after a half rotation: %v, want the first certificate", err)
	}
	data, _ = os.ReadFile(key2)
	if err := os.WriteFile(key, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := k.Reload(); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	nextRoots := x509.NewCertPool()
	nextRoots.AddCert(next.Cert)
	got, err := dial(addr, nextRoots)
	if err != nil || got.Equal(first) || got.Subject.CommonName != "server2" {
		t.Fatalf("after rotation: %v %v, want server2's certificate", got, err)
	}
}

// With a client CA, require refuses a client without a certificate or
// with one of another CA; optional admits one without.
func TestClientCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	stranger := certstest.NewCA(t, dir, "stranger")
	cert, key := ca.Issue(t, dir, "server", "localhost")
	good, err := tls.LoadX509KeyPair(ca.Issue(t, dir, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := tls.LoadX509KeyPair(stranger.Issue(t, dir, "mallory"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, policy := range []ClientAuth{ClientRequire, ClientOptional} {
		k, err := Load(Config{CertFile: cert, KeyFile: key, ClientCAFile: ca.File, ClientAuth: policy})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, k)
		if _, err := dial(addr, roots, good); err != nil {
			t.Errorf("%s: a client of the CA: %v", policy, err)
		}
		if _, err := dial(addr, roots, bad); err == nil {
			t.Errorf("%s: a client of another CA was admitted", policy)
		}
		if _, err := dial(addr, roots); (err == nil) != (policy == ClientOptional) {
			t.Errorf("%s: a client without a certificate: %v", policy, err)
		}
	}
}
