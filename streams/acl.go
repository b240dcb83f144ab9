package streams

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Role is what a principal does in an installation, and so the Kafka ACLs
// it needs (RoleACLs).
type Role string

const (
	// RoleController is `sluice node` and `sluice autoscaler` (and `sluice
	// dev` against a broker): they create, retire and delete every topic
	// and group of the installation and read every group's lag.
	RoleController Role = "controller"
	// RoleGateway is `sluice gateway`: it produces requests to every
	// application, reads the replies on its own reply topics, deploys
	// specs and publishes model and code versions.
	RoleGateway Role = "gateway"
	// RoleReplica is the replicas of one application: they read and
	// write that application's topics only and join its groups only.
	RoleReplica Role = "replica"
)

// Roles lists the roles in the order renderings print them.
var Roles = []Role{RoleController, RoleGateway, RoleReplica}

// ACLResource is the kind of resource an ACL is on, as kafka-acls.sh
// names it (--topic, --group, --cluster).
type ACLResource string

// The resources Sluice's ACLs are on.
const (
	ACLTopic   ACLResource = "topic"
	ACLGroup   ACLResource = "group"
	ACLCluster ACLResource = "cluster"
	// ACLTransactionalID: an exactly-once replica's transactional id,
	// its group and instance (kafka-acls.sh --transactional-id).
	ACLTransactionalID ACLResource = "transactional-id"
)

// ACL allows Ops on one resource (a name, or every name starting with
// it when Prefixed). Ops are Kafka's operation names: Read, Write,
// Create, Delete, Describe, DescribeConfigs, AlterConfigs, All.
type ACL struct {
	Resource ACLResource
	Name     string // "kafka-cluster" for the cluster
	Prefixed bool
	Ops      []string
}

// RoleACLs are the ACLs role needs in the installation n names; app is
// the application of RoleReplica (ignored otherwise). What the topic
// naming allows and what it does not (docs/ARCHITECTURE.md, "Kafka
// security"): every topic and group of application A starts with
// "<prefix>.app.A." and application names hold no dot, so a prefixed
// ACL gives A's replicas A's topics and groups and nothing of B's. Reply
// topics ("<prefix>.reply.<instance>") carry no application, so a
// replica, which answers any caller and calls through its own reply
// topic, is allowed every reply topic; the control topics it reads
// (apps, status, registry events) are shared by all applications.
func RoleACLs(n Namer, role Role, app string) ([]ACL, error) {
	p := n.Prefix()
	reply := ACL{Resource: ACLTopic, Name: p + ".reply.", Prefixed: true}
	switch role {
	case RoleController:
		return []ACL{
			{Resource: ACLTopic, Name: p + ".", Prefixed: true, Ops: []string{"All"}},
			{Resource: ACLGroup, Name: p + ".", Prefixed: true, Ops: []string{"All"}},
			// sluice dlq replay's transactional id: the prefix of
			// platform/dlq's and the dead-letter topic's name.
			{Resource: ACLTransactionalID, Name: "sluice-dlq-replay/" + p + ".", Prefixed: true, Ops: []string{"Describe", "Write"}},
			{Resource: ACLCluster, Name: "kafka-cluster", Ops: []string{"Describe"}},
		}, nil
	case RoleGateway:
		reply.Ops = []string{"Create", "Delete", "Describe", "DescribeConfigs", "Read", "Write"}
		return []ACL{
			{Resource: ACLTopic, Name: p + ".app.", Prefixed: true, Ops: []string{"Describe", "Write"}},
			reply,
			{Resource: ACLTopic, Name: n.Apps(), Ops: []string{"Create", "Describe", "Read", "Write"}},
			{Resource: ACLTopic, Name: n.Status(), Ops: []string{"Create", "Describe", "Read"}},
			{Resource: ACLTopic, Name: n.RegistryEvents(), Ops: []string{"Create", "Describe", "Read", "Write"}},
			{Resource: ACLTopic, Name: n.Audit(), Ops: []string{"Create", "Describe", "Read", "Write"}}, // the audit trail (gateway/audit)
			{Resource: ACLGroup, Name: p + ".", Prefixed: true, Ops: []string{"Describe"}},
			{Resource: ACLCluster, Name: "kafka-cluster", Ops: []string{"Describe"}},
		}, nil
	case RoleReplica:
		if err := ValidSegment(app); err != nil {
			return nil, fmt.Errorf("replica ACLs: application %q: %w", app, err)
		}
		reply.Ops = []string{"Create", "Describe", "Read", "Write"}
		own := p + ".app." + app + "."
		return []ACL{
			{Resource: ACLTopic, Name: own, Prefixed: true, Ops: []string{"Describe", "Read", "Write"}},
			{Resource: ACLGroup, Name: own, Prefixed: true, Ops: []string{"Describe", "Read"}},
			{Resource: ACLTransactionalID, Name: own, Prefixed: true, Ops: []string{"Describe", "Write"}}, // exactly-once delivery
			reply,
			// Opening the control logs creates them where absent.
			{Resource: ACLTopic, Name: n.Apps(), Ops: []string{"Create", "Describe", "Read"}},
			{Resource: ACLTopic, Name: n.Status(), Ops: []string{"Create", "Describe", "Read", "Write"}},
			{Resource: ACLTopic, Name: n.RegistryEvents(), Ops: []string{"Create", "Describe", "Read"}},
		}, nil
	}
	return nil, fmt.Errorf("no role %q: want controller, gateway or replica", role)
}

// KfakeACLs are acls for principal ("User:name") in the embedded
// broker's terms, to enforce them in tests (WithACLUser).
func KfakeACLs(principal string, acls []ACL) []kfake.ACL {
	var out []kfake.ACL
	for _, a := range acls {
		res := map[ACLResource]kmsg.ACLResourceType{ACLTopic: kmsg.ACLResourceTypeTopic, ACLGroup: kmsg.ACLResourceTypeGroup, ACLCluster: kmsg.ACLResourceTypeCluster,
			ACLTransactionalID: kmsg.ACLResourceTypeTransactionalId}[a.Resource]
		pat := kmsg.ACLResourcePatternTypeLiteral
		if a.Prefixed {
			pat = kmsg.ACLResourcePatternTypePrefixed
		}
		for _, op := range a.Ops {
			o, err := kmsg.ParseACLOperation(op)
			if err != nil {
				continue // the names above are Kafka's: ParseACLOperation knows them
			}
			out = append(out, kfake.ACL{Principal: principal, Resource: res, Name: a.Name, Pattern: pat, Operation: o, Allow: true})
		}
	}
	return out
}
