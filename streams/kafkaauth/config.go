// Package kafkaauth is how every Sluice process secures its connections
// to Kafka: TLS (a CA bundle, an optional client certificate, a server
// name) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER). A
// Config comes from one YAML file, the SLUICE_KAFKA_* environment and
// command-line flags, in that order of precedence from lowest to
// highest; Options turns it into franz-go options and Environ into the
// environment a child process (a replica the node starts, the Python
// replica) reads the same Config from. Passwords come from the
// environment or a file, never from a flag or the config file.
package kafkaauth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The SASL mechanisms Sluice speaks.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

// Mechanisms lists the SASL mechanisms in the order errors name them.
var Mechanisms = []string{Plain, ScramSHA256, ScramSHA512, OAuthBearer}

// The environment variables a Config is read from (FromEnv) and written
// to (Environ). The Helm chart sets the same names.
const (
	EnvConfig       = "SLUICE_KAFKA_CONFIG"
	EnvTLS          = "SLUICE_KAFKA_TLS"
	EnvCAFile       = "SLUICE_KAFKA_CA_FILE"
	EnvCertFile     = "SLUICE_KAFKA_CERT_FILE"
	EnvKeyFile      = "SLUICE_KAFKA_KEY_FILE"
	EnvServerName   = "SLUICE_KAFKA_SERVER_NAME"
	EnvMechanism    = "SLUICE_KAFKA_SASL_MECHANISM"
	EnvUsername     = "SLUICE_KAFKA_SASL_USERNAME"
	EnvPassword     = "SLUICE_KAFKA_SASL_PASSWORD"
	EnvPasswordFile = "SLUICE_KAFKA_SASL_PASSWORD_FILE"
	EnvTokenFile    = "SLUICE_KAFKA_SASL_TOKEN_FILE"
	EnvTokenCommand = "SLUICE_KAFKA_SASL_TOKEN_COMMAND"
)

// Config is the security of a process's Kafka connections. The zero
// Config is plaintext without SASL.
type Config struct {
	TLS  TLS  `yaml:"tls"`
	SASL SASL `yaml:"sasl"`
}

// TLS is TLS to the brokers. Any file or a server name turns it on.
type TLS struct {
	Enabled    bool   `yaml:"enabled"`
	CAFile     string `yaml:"ca_file"`     // PEM bundle of CAs; empty: the system's
	CertFile   string `yaml:"cert_file"`   // client certificate (PEM), with KeyFile
	KeyFile    string `yaml:"key_file"`    // its key (PEM)
	ServerName string `yaml:"server_name"` // name the brokers' certificates must carry; empty: the host dialled
}

// SASL is SASL authentication to the brokers.
type SASL struct {
	Mechanism string `yaml:"mechanism"` // one of Mechanisms; empty: no SASL
	Username  string `yaml:"username"`  // PLAIN and SCRAM
	// Password is PLAIN's and SCRAM's password, from SLUICE_KAFKA_SASL_PASSWORD
	// only; the config file names a PasswordFile instead.
	Password     string `yaml:"-"`
	PasswordFile string `yaml:"password_file"`
	// TokenFile holds OAUTHBEARER's token, read again whenever the file
	// changes (a sidecar or a projected volume refreshes it).
	TokenFile string `yaml:"token_file"`
	// TokenCommand prints OAUTHBEARER's token on stdout; it runs for
	// every new connection. Fields separated by spaces, no shell.
	TokenCommand string `yaml:"token_command"`
}

// On reports whether TLS is used.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

// IsZero reports whether c is plaintext without SASL.
func (c Config) IsZero() bool { return !c.TLS.On() && c.SASL.Mechanism == "" }

// String says how c connects, without secrets: "SASL_SSL SCRAM-SHA-512
// user sluice", "SSL", "PLAINTEXT".
func (c Config) String() string {
	proto := "PLAINTEXT"
	switch {
	case c.TLS.On() && c.SASL.Mechanism != "":
		proto = "SASL_SSL"
	case c.TLS.On():
		proto = "SSL"
	case c.SASL.Mechanism != "":
		proto = "SASL_PLAINTEXT"
	}
	if c.SASL.Mechanism == "" {
		return proto
	}
	s := proto + " " + c.SASL.Mechanism
	if c.SASL.Username != "" {
		s += " user " + c.SASL.Username
	}
	return s
}

// Validate names the first field that is wrong or contradicts another.
func (c Config) Validate() error {
	t, s := c.TLS, c.SASL
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("tls.cert_file and tls.key_file go together: give both or neither")
	}
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.TokenFile != "" || s.TokenCommand != "" {
			return errors.New("sasl.mechanism is required with SASL credentials: want one of " + strings.Join(Mechanisms, ", "))
		}
	case Plain, ScramSHA256, ScramSHA512:
		if s.Username == "" {
			return fmt.Errorf("sasl.username is required with %s", s.Mechanism)
		}
		if (s.Password == "") == (s.PasswordFile == "") {
			return fmt.Errorf("%s needs exactly one of %s and sasl.password_file", s.Mechanism, EnvPassword)
		}
		if s.TokenFile != "" || s.TokenCommand != "" {
			return fmt.Errorf("sasl.token_file and sasl.token_command are for %s, not %s", OAuthBearer, s.Mechanism)
		}
	case OAuthBearer:
		if (s.TokenFile == "") == (s.TokenCommand == "") {
			return fmt.Errorf("%s needs exactly one of sasl.token_file and sasl.token_command", OAuthBearer)
		}
		if s.Password != "" || s.PasswordFile != "" {
			return fmt.Errorf("%s takes a token, not a password", OAuthBearer)
		}
		if s.TokenCommand != "" && strings.TrimSpace(s.TokenCommand) == "" {
			return errors.New("sasl.token_command is blank: name the command that prints the token")
		}
	default:
		return fmt.Errorf("sasl.mechanism %q is not one of %s", s.Mechanism, strings.Join(Mechanisms, ", "))
	}
	return nil
}

// Overlay returns c with every non-empty field of o in place of c's: the
// environment over the file, the flags over the environment.
func (c Config) Overlay(o Config) Config {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	c.TLS.Enabled = c.TLS.Enabled || o.TLS.Enabled
	set(&c.TLS.CAFile, o.TLS.CAFile)
	set(&c.TLS.CertFile, o.TLS.CertFile)
	set(&c.TLS.KeyFile, o.TLS.KeyFile)
	set(&c.TLS.ServerName, o.TLS.ServerName)
	set(&c.SASL.Mechanism, o.SASL.Mechanism)
	set(&c.SASL.Username, o.SASL.Username)
	if o.SASL.Password != "" || o.SASL.PasswordFile != "" { // one replaces the other
		c.SASL.Password, c.SASL.PasswordFile = o.SASL.Password, o.SASL.PasswordFile
	}
	if o.SASL.TokenFile != "" || o.SASL.TokenCommand != "" {
		c.SASL.TokenFile, c.SASL.TokenCommand = o.SASL.TokenFile, o.SASL.TokenCommand
	}
	return c
}

// FromEnv reads the SLUICE_KAFKA_* variables (not the file
// SLUICE_KAFKA_CONFIG names: Resolve reads both).
func FromEnv(getenv func(string) string) (Config, error) {
	var c Config
	if v := getenv(EnvTLS); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s=%q: want true or false", EnvTLS, v)
		}
		c.TLS.Enabled = on
	}
	c.TLS.CAFile = getenv(EnvCAFile)
	c.TLS.CertFile = getenv(EnvCertFile)
	c.TLS.KeyFile = getenv(EnvKeyFile)
	c.TLS.ServerName = getenv(EnvServerName)
	c.SASL.Mechanism = strings.ToUpper(getenv(EnvMechanism))
	c.SASL.Username = getenv(EnvUsername)
	c.SASL.Password = getenv(EnvPassword)
	c.SASL.PasswordFile = getenv(EnvPasswordFile)
	c.SASL.TokenFile = getenv(EnvTokenFile)
	c.SASL.TokenCommand = getenv(EnvTokenCommand)
	if c.SASL.Password != "" && c.SASL.PasswordFile != "" {
		return Config{}, fmt.Errorf("%s and %s are both set: give one", EnvPassword, EnvPasswordFile)
	}
	return c, nil
}

// Resolve is a process's Config: the file (path, else the one
// SLUICE_KAFKA_CONFIG names), under the environment, under flags (a
// Config of what the command line gave), validated.
func Resolve(path string, getenv func(string) string, flags Config) (Config, error) {
	var c Config
	if path == "" {
		path = getenv(EnvConfig)
	}
	if path != "" {
		var err error
		if c, err = Load(path); err != nil {
			return Config{}, err
		}
	}
	e, err := FromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c = c.Overlay(e).Overlay(flags)
	if err := c.Validate(); err != nil {
		if path != "" {
			return Config{}, fmt.Errorf("kafka security (%s and the environment): %w", path, err)
		}
		return Config{}, fmt.Errorf("kafka security: %w", err)
	}
	return c, nil
}

// fileConfig is Config as the file spells it: Password is there only to
// refuse it with a clear error.
type fileConfig struct {
	TLS  TLS `yaml:"tls"`
	SASL struct {
		SASL     `yaml:",inline"`
		Password *string `yaml:"password"`
	} `yaml:"sasl"`
}

// Load reads a config file strictly: an unknown field, a value of the
// wrong type or a password written in it is an error naming the file and
// line.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("kafka config: %w", err)
	}
	return Parse(path, b)
}

// Parse is Load of b, named name in errors.
func Parse(name string, b []byte) (Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f fileConfig
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root) // decoded above: it parses
	if f.SASL.Password != nil {
		return Config{}, fmt.Errorf("%s:%d: sasl.password: a password is never read from the config file; set %s or sasl.password_file",
			name, lineOf(&root, "sasl", "password"), EnvPassword)
	}
	c := Config{TLS: f.TLS, SASL: f.SASL.SASL}
	c.SASL.Mechanism = strings.ToUpper(c.SASL.Mechanism)
	if m := c.SASL.Mechanism; m != "" && !slices.Contains(Mechanisms, m) {
		return Config{}, fmt.Errorf("%s:%d: sasl.mechanism %q is not one of %s", name, lineOf(&root, "sasl", "mechanism"), m, strings.Join(Mechanisms, ", "))
	}
	return c, nil
}

// lineOf is the line of the key at path in a YAML document, or 0.
func lineOf(n *yaml.Node, path ...string) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}

// Environ is c as the SLUICE_KAFKA_* variables, for a child process: it
// names every field, empty ones too, so a variable the parent inherited
// cannot override what the parent resolved; SLUICE_KAFKA_CONFIG is
// emptied since the variables carry the file's settings.
func (c Config) Environ() []string {
	kv := func(k, v string) string { return k + "=" + v }
	return []string{
		kv(EnvConfig, ""),
		kv(EnvTLS, strconv.FormatBool(c.TLS.On())),
		kv(EnvCAFile, c.TLS.CAFile), kv(EnvCertFile, c.TLS.CertFile), kv(EnvKeyFile, c.TLS.KeyFile),
		kv(EnvServerName, c.TLS.ServerName),
		kv(EnvMechanism, c.SASL.Mechanism), kv(EnvUsername, c.SASL.Username),
		kv(EnvPassword, c.SASL.Password), kv(EnvPasswordFile, c.SASL.PasswordFile),
		kv(EnvTokenFile, c.SASL.TokenFile), kv(EnvTokenCommand, c.SASL.TokenCommand),
	}
}
