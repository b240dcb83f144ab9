package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// TestNodeKafkaPrincipals runs the production topology with least
// privilege: a broker of its own (embedded, TLS, SCRAM-SHA-512, every
// request authorised by ACLs, no superuser among the platform's users),
// or the real broker of the suite (scripts/kafka.sh with
// KAFKA_SECURITY=sasl_ssl: its StandardAuthorizer, users made by its
// admin),
// `sluice gateway` as <prefix>-gateway, `sluice node` as
// <prefix>-controller, and the node's replica processes of nodehello as
// <prefix>-app-nodehello (--kafka-replica-sasl-username), each user
// holding only the ACLs `sluice render --acls` prints for its role. The
// application answers through deployments woken from zero: those ACLs
// are enough for every role.
func TestNodeKafkaPrincipals(t *testing.T) {
	adminPW := os.Getenv("KAFKA_ADMIN_PASSWORD_FILE")
	real := len(brokers()) > 0
	if real && (adminPW == "" || streams.SecurityOf(plat.Brokers).SASL.Mechanism == "") {
		t.Skip("on a real broker, needs SASL and an authorizer: KAFKA_SECURITY=sasl_ssl scripts/kafka.sh start, its lines in the environment")
	}
	t.Parallel()
	dir := t.TempDir()
	nm, _ := streams.NewNamer("p" + streams.Instance())
	const mech = kafkaauth.ScramSHA512
	pwFile := func(user string) string { return filepath.Join(dir, "users", user, "password") }
	type account struct {
		user, password string
		acls           []streams.ACL
	}
	var accounts []account
	for _, u := range []struct {
		user, app string
		role      streams.Role
	}{
		{nm.Prefix() + "-controller", "", streams.RoleController},
		{nm.Prefix() + "-gateway", "", streams.RoleGateway},
		{nm.Prefix() + "-app-nodehello", "nodehello", streams.RoleReplica},
	} {
		acls, err := streams.RoleACLs(nm, u.role, u.app)
		if err != nil {
			t.Fatal(err)
		}
		pw := "pw-" + streams.Instance()
		must(t, os.MkdirAll(filepath.Dir(pwFile(u.user)), 0o700))
		must(t, os.WriteFile(pwFile(u.user), []byte(pw+"\n"), 0o600))
		accounts = append(accounts, account{u.user, pw, acls})
	}
	var bs, ca string
	if real {
		// The suite's broker: its CA, its admin making the users.
		sec := streams.SecurityOf(plat.Brokers)
		bs, ca = strings.Join(plat.Brokers, ","), sec.TLS.CAFile
		sec.SASL = kafkaauth.SASL{Mechanism: mech, Username: "admin", PasswordFile: adminPW}
		kopts, err := sec.Options()
		if err != nil {
			t.Fatal(err)
		}
		admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(plat.Brokers...)}, kopts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, a := range accounts {
			createUser(ctx, t, admin, a.user, a.password, a.acls)
		}
		time.Sleep(time.Second) // users and ACLs reach the broker through its metadata log
	} else {
		files, err := kafkaauth.SelfSigned(dir, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		tlsOpt, err := streams.WithTLS(files.Cert, files.Key, "")
		if err != nil {
			t.Fatal(err)
		}
		opts := []streams.EmbeddedOpt{tlsOpt}
		for _, a := range accounts {
			opts = append(opts, streams.WithACLUser(mech, a.user, a.password, streams.KfakeACLs("User:"+a.user, a.acls)...))
		}
		emb, err := streams.StartEmbedded(0, "", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(emb.Close)
		bs, ca = strings.Join(emb.Brokers(), ","), files.CA
	}
	envOf := func(user string) []string {
		return kafkaauth.Config{
			TLS:  kafkaauth.TLS{Enabled: true, CAFile: ca},
			SASL: kafkaauth.SASL{Mechanism: mech, Username: user, PasswordFile: pwFile(user)},
		}.Environ()
	}
	var logs syncWriter
	logs.w = &strings.Builder{}
	bin := sluiceBinary(t)
	start := func(env []string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = &logs
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	gw := start(envOf(nm.Prefix()+"-gateway"), "gateway", "--brokers", bs, "--prefix", nm.Prefix(), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0")
	out, err := gw.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	must(t, gw.Start())
	t.Cleanup(func() { stop(gw) })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("gateway did not start: %v\n%s", err, logs.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	addr := strings.TrimSuffix(strings.Fields(strings.SplitN(line, "http://", 2)[1])[0], ",")

	node := start(envOf(nm.Prefix()+"-controller"), "node", "--brokers", bs, "--prefix", nm.Prefix(), "--model-cache", t.TempDir(),
		"--kafka-replica-sasl-username", "{prefix}-app-{app}", "--kafka-replica-sasl-password-file", filepath.Join(dir, "users", "{prefix}-app-{app}", "password"))
	must(t, node.Start())
	t.Cleanup(func() { stop(node) })

	if b, err := exec.Command(bin, "deploy", "-f", writeFile(t, "nodehello.yaml", nodeHelloYAML), "--addr", addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s\nlogs:\n%s", err, b, logs.String())
	}
	resp, err := http.Post("http://"+addr+"/nodehello", "application/json", strings.NewReader(`{"language":"spanish","name":"Node"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hola Node" {
		t.Fatalf("through replicas with their application's principal: %d %q\nlogs:\n%s", resp.StatusCode, body, logs.String())
	}
	// The replica processes the node runs are its children: each connects
	// as the application's user, never as the node's.
	users := replicaUsers(t, node.Process.Pid)
	if len(users) == 0 {
		t.Fatal("no replica process found under the node")
	}
	for pid, u := range users {
		if u != nm.Prefix()+"-app-nodehello" {
			t.Errorf("replica process %d connects as %q, want %s-app-nodehello", pid, u, nm.Prefix())
		}
	}
	if strings.Contains(logs.String(), "AUTHORIZATION_FAILED") {
		t.Errorf("a role lacked an ACL:\n%s", logs.String())
	}
}

// replicaUsers maps each `sluice replica` child of pid to the SASL user in
// its environment (Linux /proc).
func replicaUsers(t *testing.T, pid int) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	out := map[int]string{}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if !strings.Contains(string(cmdline), "replica\x00") {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		user := ""
		for _, kv := range strings.Split(string(environ), "\x00") {
			if v, ok := strings.CutPrefix(kv, kafkaauth.EnvUsername+"="); ok {
				user = v // the last one wins, as in exec
			}
		}
		out[child] = user
	}
	return out
}
