package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"

	"github.com/sluice-serve/sluice/gateway/auth"
	"github.com/sluice-serve/sluice/gateway/certs"
)

// tokenEnv holds the bearer token client commands send. There is no
// flag for it: a token in argv is in every process listing.
const tokenEnv = "SLUICE_TOKEN"

// Client TLS: the CA a client command trusts for an https:// --addr
// (instead of the system's), and the certificate it presents to a
// gateway that verifies clients.
const (
	caFileEnv     = "SLUICE_CA_FILE"
	clientCertEnv = "SLUICE_CLIENT_CERT_FILE"
	clientKeyEnv  = "SLUICE_CLIENT_KEY_FILE"
)

// frontSecurity is how a front door's listeners are secured: who may
// call (bearer tokens of a file, JWTs of a key set) and TLS.
type frontSecurity struct {
	tokens   *auth.Keeper      // nil: no token file
	jwt      *auth.JWTVerifier // nil: no JWTs
	tls      *certs.Keeper     // nil: clear text
	insecure bool              // serve off loopback without authentication
}

// authenticates reports whether callers must carry a credential.
func (s *frontSecurity) authenticates() bool { return s.tokens != nil || s.jwt != nil }

// scheme is the URL scheme of the REST listener.
func (s *frontSecurity) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}

// securityFlags declares the flags of authentication and TLS; the
// function it returns loads the files once parsed. A file that does not
// load refuses the start, naming the file and why (exit code 2).
func securityFlags(fs *flagSet) func() (*frontSecurity, error) {
	authFile := fs.envString("auth-file", "SLUICE_AUTH_FILE", "", "YAML file of bearer tokens (name, token_sha256, scopes) every API call must carry; reloaded on change (default: no authentication)")
	jwks := fs.envString("jwks-file", "SLUICE_JWKS_FILE", "", "JSON Web Key Set of the issuer whose JWTs are accepted as bearer tokens; reloaded on change")
	issuer := fs.envString("jwt-issuer", "SLUICE_JWT_ISSUER", "", "the iss a JWT must carry (required with --jwks-file)")
	audience := fs.envString("jwt-audience", "SLUICE_JWT_AUDIENCE", "", "a value a JWT's aud must hold (required with --jwks-file)")
	scopeClaim := fs.envString("jwt-scope-claim", "SLUICE_JWT_SCOPE_CLAIM", "", "the JWT claim holding the scopes, space-separated or an array (default: scope, then scp, then scopes)")
	nameClaim := fs.envString("jwt-name-claim", "SLUICE_JWT_NAME_CLAIM", "", "the JWT claim naming the identity (default sub)")
	leeway := fs.Duration("jwt-leeway", auth.DefaultJWTLeeway, "clock skew allowed on a JWT's exp and nbf")
	cert := fs.envString("tls-cert", "SLUICE_TLS_CERT_FILE", "", "PEM certificate chain both listeners serve TLS with; reloaded on change (default: clear text)")
	key := fs.envString("tls-key", "SLUICE_TLS_KEY_FILE", "", "PEM private key of --tls-cert")
	clientCA := fs.envString("tls-client-ca", "SLUICE_TLS_CLIENT_CA_FILE", "", "PEM CA certificates that sign the certificates clients present")
	clientAuth := fs.envString("tls-client-auth", "SLUICE_TLS_CLIENT_AUTH", "", "with --tls-client-ca: require (every client presents a certificate) or optional (default require)")
	insecure := fs.Bool("insecure", false, "listen on an address other than loopback without authentication: anyone who reaches it may deploy, delete and read everything")
	return func() (*frontSecurity, error) {
		s := &frontSecurity{insecure: *insecure}
		refuse := func(err error) (*frontSecurity, error) { return nil, &ExitError{Code: 2, Err: err} }
		if *authFile != "" {
			k, err := auth.Load(*authFile)
			if err != nil {
				return refuse(err)
			}
			s.tokens = k
		}
		if *jwks != "" || *issuer != "" || *audience != "" {
			if *jwks == "" {
				return refuse(fmt.Errorf("--jwt-issuer and --jwt-audience need --jwks-file, the keys that sign the tokens"))
			}
			v, err := auth.LoadJWKS(auth.JWTConfig{JWKSFile: *jwks, Issuer: *issuer, Audience: *audience,
				ScopeClaim: *scopeClaim, NameClaim: *nameClaim, Leeway: *leeway})
			if err != nil {
				return refuse(err)
			}
			s.jwt = v
		}
		if *cert != "" || *key != "" || *clientCA != "" || *clientAuth != "" {
			k, err := certs.Load(certs.Config{CertFile: *cert, KeyFile: *key, ClientCAFile: *clientCA, ClientAuth: certs.ClientAuth(*clientAuth)})
			if err != nil {
				return refuse(err)
			}
			s.tls = k
		}
		return s, nil
	}
}

// checkExposure refuses to listen on an address other than loopback
// without authentication, unless --insecure says so; with
// authentication but no TLS there, it warns: tokens cross the network in
// clear text.
func (s *frontSecurity) checkExposure(command string, log *slog.Logger, addrs ...string) error {
	for _, a := range addrs {
		if loopback(a) {
			continue
		}
		switch {
		case !s.authenticates() && !s.insecure:
			return usageError("%s: %s is not a loopback address and no authentication is configured: give --auth-file or --jwks-file "+
				"(and --tls-cert with --tls-key, to keep tokens off the wire), listen on 127.0.0.1, or pass --insecure to serve everyone who can reach it", command, a)
		case !s.authenticates():
			log.Warn("serving without authentication on an address other than loopback (--insecure): anyone who reaches it may deploy, delete and read everything", "addr", a)
		case s.tls == nil:
			log.Warn("bearer tokens cross the network in clear text: give --tls-cert and --tls-key unless TLS ends in front of the gateway", "addr", a)
		}
	}
	return nil
}

// loopback reports whether a listen address binds loopback only: an
// empty host (every address) or a name other than localhost does not.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// watch reloads the files on change until ctx ends; done closes after.
func (s *frontSecurity) watch(ctx context.Context, log *slog.Logger) (done <-chan struct{}) {
	var wg sync.WaitGroup
	if s.tokens != nil {
		wg.Go(func() { s.tokens.Watch(ctx, auth.DefaultPoll, log) })
	}
	if s.jwt != nil {
		wg.Go(func() { s.jwt.Watch(ctx, auth.DefaultPoll, log) })
	}
	if s.tls != nil {
		wg.Go(func() { s.tls.Watch(ctx, certs.DefaultPoll, log) })
	}
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	return ch
}

// bearer sends the token on every gRPC call of a client connection.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: a gateway on loopback speaks clear
// text; an https:// --addr has TLS.
func (bearer) RequireTransportSecurity() bool { return false }

// tokenDialOptions are the dial options that send env's SLUICE_TOKEN.
func tokenDialOptions(env Env) []grpc.DialOption {
	if t := strings.TrimSpace(env.Getenv(tokenEnv)); t != "" {
		return []grpc.DialOption{grpc.WithPerRPCCredentials(bearer(t))}
	}
	return nil
}

// clientTLS is the TLS a client command speaks to an https:// --addr:
// the CA of SLUICE_CA_FILE (else the system's), and the certificate of
// SLUICE_CLIENT_CERT_FILE and SLUICE_CLIENT_KEY_FILE when given.
func clientTLS(env Env) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := env.Getenv(caFileEnv); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, usageError("%s: %v", caFileEnv, err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usageError("%s=%s: no PEM certificate in it", caFileEnv, f)
		}
	}
	certFile, keyFile := env.Getenv(clientCertEnv), env.Getenv(clientKeyEnv)
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, usageError("%s and %s: %v", clientCertEnv, clientKeyEnv, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// httpClient is the HTTP client of the client commands: clientTLS for
// https.
func httpClient(env Env) (*http.Client, error) {
	c, err := clientTLS(env)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = c
	return &http.Client{Transport: t}, nil
}
