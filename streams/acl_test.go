package streams

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// TestRoleACLsEnforced runs the ACLs of each role on the embedded broker
// with an authorizer: a replica of application a reads and writes a's
// topics and joins a's groups, and is denied b's topics, b's groups and
// writing the apps topic; the gateway produces to any application but
// joins no group.
func TestRoleACLsEnforced(t *testing.T) {
	t.Parallel()
	n, _ := NewNamer("acl")
	const mech = kafkaauth.ScramSHA256
	opts := []EmbeddedOpt{WithSASLUser(mech, "admin", "admin-pw")}
	for _, u := range []struct {
		user string
		role Role
	}{{"replica-a", RoleReplica}, {"gateway", RoleGateway}, {"controller", RoleController}} {
		acls, err := RoleACLs(n, u.role, "a")
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, WithACLUser(mech, u.user, u.user+"-pw", KfakeACLs("User:"+u.user, acls)...))
	}
	e, err := StartEmbedded(0, "", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	as := func(user string, extra ...kgo.Opt) *kgo.Client {
		t.Helper()
		sec, err := kafkaauth.Config{SASL: kafkaauth.SASL{Mechanism: mech, Username: user, Password: user + "-pw"}}.Options()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(e.Brokers()...), kgo.RecordRetries(2)}, sec...), extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	aIn, bIn := n.Ingress("a"), n.Ingress("b")
	// The controller creates every topic (as the reconciler does).
	if err := CreateTopics(ctx, kadm.NewClient(as("controller")), TopicSpec{Name: aIn, Partitions: 1}, TopicSpec{Name: bIn, Partitions: 1},
		CompactedTopic(n.Apps()), TopicSpec{Name: n.Reply("gw-1"), Partitions: 1}); err != nil {
		t.Fatalf("controller creates topics: %v", err)
	}
	produce := func(cl *kgo.Client, topic string) error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
	}
	gw := as("gateway")
	for _, topic := range []string{aIn, bIn, n.Reply("gw-1")} {
		if err := produce(gw, topic); err != nil {
			t.Errorf("gateway produce to %s: %v", topic, err)
		}
	}
	rep := as("replica-a")
	if err := produce(rep, aIn); err != nil {
		t.Fatalf("replica of a produce to its own topic: %v", err)
	}
	for _, topic := range []string{bIn, n.Apps()} {
		if err := produce(rep, topic); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("replica of a produce to %s: %v, want TOPIC_AUTHORIZATION_FAILED", topic, err)
		}
	}
	consume := func(user, group, topic string) error {
		cl := as(user, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			fs := cl.PollFetches(pctx)
			if err := fs.Err0(); err != nil {
				return err
			}
			if len(fs.Records()) > 0 {
				return cl.CommitUncommittedOffsets(pctx)
			}
		}
	}
	if err := consume("replica-a", n.Group("a", "d"), aIn); err != nil {
		t.Errorf("replica of a reads its topic in its group: %v", err)
	}
	if err := consume("replica-a", n.Group("b", "d"), bIn); !errors.Is(err, kerr.GroupAuthorizationFailed) && !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("replica of a reads b's topic in b's group: %v, want an authorization failure", err)
	}
	if err := consume("replica-a", n.Group("a", "d"), bIn); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("replica of a reads b's topic in its own group: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := consume("gateway", n.Group("a", "d"), aIn); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("gateway joins a's group: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	// The gateway keeps the audit trail (gateway/audit): it creates the
	// topic, writes its entries and reads the latest back, by partition.
	if err := CreateTopics(ctx, kadm.NewClient(gw), TopicSpec{Name: n.Audit(), Partitions: 1}); err != nil {
		t.Errorf("gateway creates the audit topic: %v", err)
	}
	if err := produce(gw, n.Audit()); err != nil {
		t.Errorf("gateway writes the audit topic: %v", err)
	}
	trail := as("gateway", kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{n.Audit(): {0: kgo.NewOffset().AtStart()}}))
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if fs := trail.PollFetches(pctx); fs.Err0() != nil || len(fs.Records()) == 0 {
		t.Errorf("gateway reads the audit topic: %v (%d records)", fs.Err0(), len(fs.Records()))
	}
	if err := produce(rep, n.Audit()); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("replica of a writes the audit topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// An exactly-once replica's transactional id is its group and its
	// instance (replicas.transactionalOpts): a's own, not b's.
	txnID := func(app string) error {
		cl := as("replica-a", kgo.TransactionalID(n.Group(app, "d")+"/i"))
		_, _, err := cl.ProducerID(ctx)
		return err
	}
	if err := txnID("a"); err != nil {
		t.Errorf("replica of a takes a transactional id of its group: %v", err)
	}
	if err := txnID("b"); !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Errorf("replica of a takes a transactional id of b's group: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}
	// sluice dlq replay, run as the controller, takes the dead-letter
	// topic's transactional id (platform/dlq.Replay).
	dlq := as("controller", kgo.TransactionalID("sluice-dlq-replay/"+n.DeadLetter("a")))
	if _, _, err := dlq.ProducerID(ctx); err != nil {
		t.Errorf("controller takes sluice dlq replay's transactional id: %v", err)
	}
}
