package cli

import (
	"context"
	"log/slog"
	"strings"

	"google.golang.org/grpc"

	"github.com/sluice-serve/sluice/gateway/auth"
)

// tokenEnv holds the bearer token client commands send. There is no
// flag for it: a token in argv is in every process listing.
const tokenEnv = "SLUICE_TOKEN"

// authFlag declares --auth-file; the function it returns loads the file
// once parsed: nil without one (every caller is served, as before), an
// error naming line and field when it does not parse.
func authFlag(fs *flagSet) func() (*auth.Keeper, error) {
	path := fs.envString("auth-file", "SLUICE_AUTH_FILE", "", "YAML file of bearer tokens (name, token_sha256, scopes) every API call must carry; reloaded on change (default: no authentication)")
	return func() (*auth.Keeper, error) {
		if *path == "" {
			return nil, nil
		}
		k, err := auth.Load(*path)
		if err != nil {
			return nil, &ExitError{Code: 2, Err: err}
		}
		return k, nil
	}
}

// watchAuth reloads k's file on change until ctx ends; done closes
// after. With no file it returns a closed channel.
func watchAuth(ctx context.Context, k *auth.Keeper, log *slog.Logger) (done <-chan struct{}) {
	ch := make(chan struct{})
	if k == nil {
		close(ch)
		return ch
	}
	go func() { defer close(ch); k.Watch(ctx, auth.DefaultPoll, log) }()
	return ch
}

// bearer sends the token on every gRPC call of a client connection.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: the platform speaks clear text
// until the gateway serves TLS; an https:// --addr has it.
func (bearer) RequireTransportSecurity() bool { return false }

// tokenDialOptions are the dial options that send env's SLUICE_TOKEN.
func tokenDialOptions(env Env) []grpc.DialOption {
	if t := strings.TrimSpace(env.Getenv(tokenEnv)); t != "" {
		return []grpc.DialOption{grpc.WithPerRPCCredentials(bearer(t))}
	}
	return nil
}
