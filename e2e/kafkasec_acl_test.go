package e2e

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// TestKafkaACLsOnBroker enforces the replica ACLs `sluice render --acls`
// prints on the real broker's StandardAuthorizer (scripts/kafka.sh with
// KAFKA_SECURITY=sasl_ssl; KAFKA_ADMIN_PASSWORD_FILE names its admin's
// password): a user holding the ACLs of chain's replicas reads and writes
// chain's topics of this run's platform in chain's group, and is denied
// hello's topics, hello's group and writing the apps topic.
func TestKafkaACLsOnBroker(t *testing.T) {
	adminPW := os.Getenv("KAFKA_ADMIN_PASSWORD_FILE")
	sec := streams.SecurityOf(plat.Brokers)
	if len(brokers()) == 0 || adminPW == "" || sec.SASL.Mechanism == "" {
		t.Skip("needs the real broker with SASL and an authorizer: KAFKA_SECURITY=sasl_ssl scripts/kafka.sh start, its lines in the environment")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := func(user, password string, extra ...kgo.Opt) *kgo.Client {
		t.Helper()
		cfg := sec
		cfg.SASL = kafkaauth.SASL{Mechanism: kafkaauth.ScramSHA512, Username: user, Password: password}
		if user == "admin" {
			cfg.SASL.Password, cfg.SASL.PasswordFile = "", adminPW
		}
		opts, err := cfg.Options()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(plat.Brokers...), kgo.RecordRetries(2)}, opts...), extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	admin := client("admin", "")
	user, password := namer.Prefix()+"-app-chain", "pw-"+streams.Instance()
	acls, err := streams.RoleACLs(namer, streams.RoleReplica, "chain")
	if err != nil {
		t.Fatal(err)
	}
	createUser(ctx, t, admin, user, password, acls)
	time.Sleep(time.Second) // ACLs and credentials reach the broker through its metadata log

	rep := client(user, password)
	produce := func(topic string) error {
		return rep.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("1")}).FirstErr()
	}
	if err := produce(namer.Ingress("chain")); err != nil {
		t.Fatalf("chain's replica writes chain's ingress: %v", err)
	}
	for _, topic := range []string{namer.Ingress("hello"), namer.Apps()} {
		if err := produce(topic); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("chain's replica writes %s: %v, want TOPIC_AUTHORIZATION_FAILED", topic, err)
		}
	}
	consume := func(group, topic string) error {
		cl := client(user, password, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for {
			fs := cl.PollFetches(pctx)
			if err := fs.Err0(); err != nil {
				return err
			}
			if len(fs.Records()) > 0 {
				return nil
			}
		}
	}
	if err := consume(namer.Group("chain", "acl-probe"), namer.Ingress("chain")); err != nil {
		t.Errorf("chain's replica reads chain's ingress in a chain group: %v", err)
	}
	if err := consume(namer.Group("hello", "acl-probe"), namer.Ingress("hello")); !errors.Is(err, kerr.GroupAuthorizationFailed) && !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("chain's replica reads hello's ingress in hello's group: %v, want an authorization failure", err)
	}
}

// createUser makes a SCRAM-SHA-512 user holding acls on a real broker, as
// its administrator, and removes both when t ends (the broker outlives
// the run).
func createUser(ctx context.Context, t *testing.T, admin *kgo.Client, user, password string, acls []streams.ACL) {
	t.Helper()
	adm := kadm.NewClient(admin)
	if _, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: password}}); err != nil {
		t.Fatalf("create user %s: %v", user, err)
	}
	req := kmsg.NewPtrCreateACLsRequest()
	for _, a := range streams.KfakeACLs("User:"+user, acls) {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = a.Resource, a.Name, a.Pattern
		c.Principal, c.Host, c.Operation, c.PermissionType = a.Principal, "*", a.Operation, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, c)
	}
	resp, err := req.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("create ACLs of %s: %v", user, err)
		}
	}
	t.Cleanup(func() {
		_, _ = adm.DeleteACLs(context.Background(), kadm.NewACLs().Allow("User:"+user).AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny))
		_, _ = adm.AlterUserSCRAMs(context.Background(), []kadm.DeleteSCRAM{{User: user, Mechanism: kadm.ScramSha512}}, nil)
	})
}
