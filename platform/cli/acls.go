package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/sluice-serve/sluice/streams"
)

// aclPrincipal is the principal of a role by convention: <prefix>-gateway,
// <prefix>-controller, <prefix>-app-<app> for the replicas of one
// application (the SASL user each runs as).
func aclPrincipal(n streams.Namer, role streams.Role, app string) string {
	if role == streams.RoleReplica {
		return n.Prefix() + "-app-" + app
	}
	return n.Prefix() + "-" + string(role)
}

// aclSubject is one principal and what it needs.
type aclSubject struct {
	role streams.Role
	app  string
	user string
	acls []streams.ACL
}

// aclSubjects are the controller, the gateway and the replicas of each
// of apps, in that order.
func aclSubjects(n streams.Namer, apps []string) ([]aclSubject, error) {
	var out []aclSubject
	add := func(role streams.Role, app string) error {
		acls, err := streams.RoleACLs(n, role, app)
		if err != nil {
			return err
		}
		out = append(out, aclSubject{role: role, app: app, user: aclPrincipal(n, role, app), acls: acls})
		return nil
	}
	for _, r := range []streams.Role{streams.RoleController, streams.RoleGateway} {
		if err := add(r, ""); err != nil {
			return nil, err
		}
	}
	for _, app := range apps {
		if err := add(streams.RoleReplica, app); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeKafkaACLs prints subjects as kafka-acls.sh commands, one per
// resource, to run as an administrator ($BOOTSTRAP and $ADMIN_CONFIG
// are the broker and the client properties of that administrator).
func writeKafkaACLs(w io.Writer, subjects []aclSubject) {
	fmt.Fprintln(w, "# Kafka ACLs of a Sluice installation: run as a Kafka administrator.")
	fmt.Fprintln(w, "# BOOTSTRAP: the brokers; ADMIN_CONFIG: that administrator's client properties.")
	for _, s := range subjects {
		what := string(s.role)
		if s.app != "" {
			what += " of application " + s.app
		}
		fmt.Fprintf(w, "\n# %s: User:%s\n", what, s.user)
		for _, a := range s.acls {
			var b strings.Builder
			fmt.Fprintf(&b, `kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add --allow-principal User:%s`, s.user)
			for _, op := range a.Ops {
				fmt.Fprintf(&b, " --operation %s", op)
			}
			switch a.Resource {
			case streams.ACLCluster:
				b.WriteString(" --cluster")
			default:
				fmt.Fprintf(&b, " --%s '%s'", a.Resource, a.Name)
			}
			if a.Prefixed {
				b.WriteString(" --resource-pattern-type prefixed")
			}
			fmt.Fprintln(w, b.String())
		}
	}
}

// writeStrimziUsers prints subjects as Strimzi KafkaUser objects (SCRAM-
// SHA-512 users with simple authorization) of the Kafka cluster named
// cluster; the user operator makes each user's password Secret.
func writeStrimziUsers(w io.Writer, subjects []aclSubject, cluster, namespace string) {
	for i, s := range subjects {
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		fmt.Fprintln(w, "apiVersion: kafka.strimzi.io/v1beta2")
		fmt.Fprintln(w, "kind: KafkaUser")
		fmt.Fprintln(w, "metadata:")
		fmt.Fprintf(w, "  name: %s\n", s.user)
		if namespace != "" {
			fmt.Fprintf(w, "  namespace: %s\n", namespace)
		}
		fmt.Fprintf(w, "  labels:\n    strimzi.io/cluster: %s\n    app.kubernetes.io/component: %s\n", cluster, s.role)
		fmt.Fprintln(w, "spec:")
		fmt.Fprintln(w, "  authentication:\n    type: scram-sha-512")
		fmt.Fprintln(w, "  authorization:\n    type: simple\n    acls:")
		for _, a := range s.acls {
			typ := string(a.Resource)
			if a.Resource == streams.ACLTransactionalID {
				typ = "transactionalId" // Strimzi's name of the resource type
			}
			fmt.Fprintf(w, "      - resource:\n          type: %s\n", typ)
			if a.Resource != streams.ACLCluster {
				pattern := "literal"
				if a.Prefixed {
					pattern = "prefix"
				}
				fmt.Fprintf(w, "          name: %q\n          patternType: %s\n", a.Name, pattern)
			}
			fmt.Fprintf(w, "        operations: [%s]\n", strings.Join(a.Ops, ", "))
		}
	}
}

// aclFlags registers render's --acls (with --app and --strimzi-cluster);
// after parsing, print renders the ACLs when --acls was given (done) and
// leaves render to go on otherwise. The replicas' ACLs are of the
// applications of the -f files and of every --app.
func aclFlags(fs *flagSet) (print func(files []string) (done bool, err error)) {
	format := fs.String("acls", "", "print the Kafka ACLs of the controller, the gateway and the replicas of each application instead: kafka-acls (kafka-acls.sh commands) or strimzi (KafkaUser objects)")
	var apps listFlag
	fs.Var(&apps, "app", "with --acls: an application whose replicas' ACLs to print, besides those of -f (repeatable)")
	cluster := fs.String("strimzi-cluster", "kafka", "with --acls strimzi: the Strimzi Kafka cluster the users belong to (label strimzi.io/cluster)")
	return func(files []string) (bool, error) {
		if *format == "" {
			for _, f := range []string{"app", "strimzi-cluster"} {
				if fs.given(f) {
					return true, usageError("render: --%s applies only with --acls", f)
				}
			}
			return false, nil
		}
		n, err := streams.NewNamer(fs.Lookup("prefix").Value.String())
		if err != nil {
			return true, usageError("--prefix: %v", err)
		}
		names := []string(apps)
		specs, err := readSpecs(files)
		if err != nil {
			return true, err
		}
		for _, a := range specs {
			names = append(names, a.Name)
		}
		subjects, err := aclSubjects(n, names)
		if err != nil {
			return true, usageError("render: %v", err)
		}
		switch *format {
		case "kafka-acls":
			writeKafkaACLs(fs.env.Stdout, subjects)
		case "strimzi":
			writeStrimziUsers(fs.env.Stdout, subjects, *cluster, fs.Lookup("namespace").Value.String())
		default:
			return true, usageError("render: --acls %q: want kafka-acls or strimzi", *format)
		}
		return true, nil
	}
}
