package cli

import (
	"strconv"
	"strings"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// optBool is a boolean flag that can also be unset (""), so that an
// environment variable fills it only when the command line did not.
type optBool string

func (b *optBool) String() string   { return string(*b) }
func (b *optBool) IsBoolFlag() bool { return true }
func (b *optBool) Set(v string) error {
	if v == "" {
		*b = ""
		return nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return err
	}
	*b = optBool(strconv.FormatBool(on))
	return nil
}

// kafkaFlags registers the flags of Kafka's TLS and SASL on a command
// that dials Kafka. After parsing, secure resolves them with the
// environment and the config file (kafkaauth.Resolve: flags over the
// environment over the file) and registers the result for brokers
// (streams.Secure), so every client the command makes connects with
// it. Passwords have no flag: SLUICE_KAFKA_SASL_PASSWORD or a file.
// A process given none of it leaves what the process registered before
// (a test's platform running in the same process) as it is.
func kafkaFlags(fs *flagSet) (secure func(brokers []string) error) {
	file := fs.envString("kafka-config", kafkaauth.EnvConfig, "", "YAML file of Kafka's TLS and SASL settings (see docs/ARCHITECTURE.md, Kafka security)")
	var tlsOn optBool
	fs.Var(&tlsOn, "kafka-tls", "connect to Kafka with TLS (implied by any --kafka-*-file or --kafka-server-name)")
	fs.envs["kafka-tls"] = kafkaauth.EnvTLS
	var f kafkaauth.Config
	fs.envStringVar(&f.TLS.CAFile, "kafka-ca-file", kafkaauth.EnvCAFile, "", "PEM bundle of the CAs Kafka's certificates are checked against (default: the system's)")
	fs.envStringVar(&f.TLS.CertFile, "kafka-cert-file", kafkaauth.EnvCertFile, "", "client certificate (PEM) for Kafka's TLS, with --kafka-key-file")
	fs.envStringVar(&f.TLS.KeyFile, "kafka-key-file", kafkaauth.EnvKeyFile, "", "key (PEM) of --kafka-cert-file")
	fs.envStringVar(&f.TLS.ServerName, "kafka-server-name", kafkaauth.EnvServerName, "", "name Kafka's certificates must carry (default: the host dialled)")
	fs.envStringVar(&f.SASL.Mechanism, "kafka-sasl-mechanism", kafkaauth.EnvMechanism, "", "SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (default: no SASL)")
	fs.envStringVar(&f.SASL.Username, "kafka-sasl-username", kafkaauth.EnvUsername, "", "SASL user (the password: "+kafkaauth.EnvPassword+" or --kafka-sasl-password-file)")
	fs.envStringVar(&f.SASL.PasswordFile, "kafka-sasl-password-file", kafkaauth.EnvPasswordFile, "", "file holding the SASL password, read again when it changes")
	fs.envStringVar(&f.SASL.TokenFile, "kafka-sasl-token-file", kafkaauth.EnvTokenFile, "", "file holding the OAUTHBEARER token, read again when it changes")
	fs.envStringVar(&f.SASL.TokenCommand, "kafka-sasl-token-command", kafkaauth.EnvTokenCommand, "", "command printing the OAUTHBEARER token (fields split on spaces, no shell)")
	return func(brokers []string) error {
		flags := f
		flags.TLS.Enabled = tlsOn == "true"
		cfg, err := kafkaauth.Resolve(*file, fs.env.Getenv, flags)
		if err != nil {
			return usageError("%s: %v", fs.help.name, err)
		}
		if tlsOn == "false" && cfg.TLS.On() {
			return usageError("%s: --kafka-tls=false contradicts the TLS files or server name given", fs.help.name)
		}
		if cfg.IsZero() {
			return nil
		}
		if err := streams.Secure(brokers, cfg); err != nil {
			return usageError("%s: %v", fs.help.name, err)
		}
		return nil
	}
}

// kafkaEnv is the environment of a child process that dials brokers: the
// Kafka security this process registered for them, so that the child
// (a replica process, the Python replica) connects as this process does
// without a secret in its arguments. Every SLUICE_KAFKA_* variable is
// set, plaintext included, so none the child inherited counts: `sluice
// dev` on its plaintext embedded broker, started with the SLUICE_KAFKA_*
// of another cluster in its environment, gives its replicas plaintext.
func kafkaEnv(brokers []string) []string {
	return streams.SecurityOf(brokers).Environ()
}

// replicaPrincipals registers the node's flags giving each application's
// replicas a SASL user of their own: templates of the user and of the
// file holding its password, where {prefix} is the topic prefix and
// {app} the application. env then returns what a replica process of app
// gets on top of the node's own Kafka settings (kafkaEnv), nothing when
// the templates are not given. The node never reads the password files:
// each replica reads its own.
func replicaPrincipals(fs *flagSet) (check func(brokers []string) error, env func(n streams.Namer, app string) []string) {
	user := fs.envString("kafka-replica-sasl-username", "SLUICE_KAFKA_REPLICA_SASL_USERNAME", "", "SASL user of each application's replicas, a template of {prefix} and {app}, e.g. {prefix}-app-{app} (default: the node's own user)")
	pwFile := fs.envString("kafka-replica-sasl-password-file", "SLUICE_KAFKA_REPLICA_SASL_PASSWORD_FILE", "", "file of the password of each application's replicas' user, a template of {prefix} and {app}, e.g. /etc/sluice/kafka-apps/{app}/password")
	expand := func(tmpl string, n streams.Namer, app string) string {
		return strings.NewReplacer("{prefix}", n.Prefix(), "{app}", app).Replace(tmpl)
	}
	check = func(brokers []string) error {
		if *user == "" && *pwFile == "" {
			return nil
		}
		switch m := streams.SecurityOf(brokers).SASL.Mechanism; m {
		case kafkaauth.Plain, kafkaauth.ScramSHA256, kafkaauth.ScramSHA512:
		default:
			return usageError("%s: --kafka-replica-sasl-username needs the node's own SASL to be PLAIN or SCRAM, not %q", fs.help.name, m)
		}
		if (*user == "") != (*pwFile == "") {
			return usageError("%s: --kafka-replica-sasl-username and --kafka-replica-sasl-password-file go together", fs.help.name)
		}
		if *user != "" && !strings.Contains(*user, "{app}") {
			return usageError("%s: --kafka-replica-sasl-username %q: without {app} every application's replicas share one user", fs.help.name, *user)
		}
		return nil
	}
	env = func(n streams.Namer, app string) []string {
		if *user == "" {
			return nil
		}
		return []string{
			kafkaauth.EnvUsername + "=" + expand(*user, n, app),
			kafkaauth.EnvPassword + "=",
			kafkaauth.EnvPasswordFile + "=" + expand(*pwFile, n, app),
		}
	}
	return check, env
}
