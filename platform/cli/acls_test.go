package cli_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluice-serve/sluice/platform/cli"
)

// TestRenderACLs: kafka-acls.sh commands for the controller, the gateway
// and the replicas of each application (of -f and --app), the replicas'
// on their application's prefix only.
func TestRenderACLs(t *testing.T) {
	t.Parallel()
	out, _, err := runRender(t, nil, "--acls", "kafka-acls", "-f", writeSpec(t, renderSpec), "--app", "other", "--prefix", "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--allow-principal User:acme-controller --operation All --topic 'acme.' --resource-pattern-type prefixed",
		"--allow-principal User:acme-gateway --operation Describe --operation Write --topic 'acme.app.' --resource-pattern-type prefixed",
		"--allow-principal User:acme-app-other --operation Describe --operation Read --operation Write --topic 'acme.app.other.' --resource-pattern-type prefixed",
		"--allow-principal User:acme-app-shop --operation Describe --operation Read --group 'acme.app.shop.' --resource-pattern-type prefixed",
		"--allow-principal User:acme-app-shop --operation Create --operation Describe --operation Read --topic 'acme.control.apps'\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "User:acme-app-shop") && strings.Contains(line, "acme.app.") && !strings.Contains(line, "'acme.app.shop.'") {
			t.Errorf("a replica of shop is allowed beyond its application: %s", line)
		}
	}
}

// TestRenderACLsStrimzi: the same as KafkaUser objects that decode.
func TestRenderACLsStrimzi(t *testing.T) {
	t.Parallel()
	out, _, err := runRender(t, nil, "--acls", "strimzi", "--app", "shop", "--strimzi-cluster", "prod", "--namespace", "kafka")
	if err != nil {
		t.Fatal(err)
	}
	type user struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string
		Metadata   struct {
			Name, Namespace string
			Labels          map[string]string
		}
		Spec struct {
			Authentication struct{ Type string }
			Authorization  struct {
				Type string
				ACLs []struct {
					Resource struct {
						Type, Name  string
						PatternType string `yaml:"patternType"`
					} `yaml:"resource"`
					Operations []string
				} `yaml:"acls"`
			}
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(out)))
	dec.KnownFields(true)
	var users []user
	for {
		var u user
		if err := dec.Decode(&u); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		users = append(users, u)
	}
	if len(users) != 3 {
		t.Fatalf("%d KafkaUsers, want controller, gateway, shop's replicas", len(users))
	}
	shop := users[2]
	if shop.APIVersion != "kafka.strimzi.io/v1beta2" || shop.Kind != "KafkaUser" || shop.Metadata.Name != "sluice-app-shop" || shop.Metadata.Namespace != "kafka" || shop.Metadata.Labels["strimzi.io/cluster"] != "prod" ||
		shop.Spec.Authentication.Type != "scram-sha-512" || shop.Spec.Authorization.Type != "simple" {
		t.Fatalf("shop's user: %+v", shop)
	}
	first := shop.Spec.Authorization.ACLs[0]
	if first.Resource.Type != "topic" || first.Resource.Name != "sluice.app.shop." || first.Resource.PatternType != "prefix" || strings.Join(first.Operations, ",") != "Describe,Read,Write" {
		t.Fatalf("shop's first ACL: %+v", first)
	}
}

func TestRenderACLsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--acls", "ranger"}, `--acls "ranger": want kafka-acls or strimzi`},
		{[]string{"--acls", "kafka-acls", "--app", "bad.name"}, `application "bad.name"`},
		{[]string{"--app", "shop", "-f", "x.yaml", "--brokers", "b:9092"}, "--app applies only with --acls"},
	} {
		_, _, err := runRender(t, nil, tc.args...)
		if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: exit %d, %v; want 2 saying %q", tc.args, cli.ExitCode(err), err, tc.says)
		}
	}
}
