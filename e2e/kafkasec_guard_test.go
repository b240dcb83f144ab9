package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ownSecurity are the functions of this suite that connect to the
// brokers with a security of their own, on purpose: the plaintext client
// the secured broker must refuse, and the users of the ACL tests.
var ownSecurity = map[string]string{
	"seed":                    "the suite's clients: the broker's addresses and the platform's security",
	"TestKafkaSecured":        "a plaintext client, which the secured broker must refuse",
	"TestKafkaACLsOnBroker":   "the broker's admin and a user holding replica ACLs",
	"TestNodeKafkaPrincipals": "the broker's admin making the users",
}

// TestSuiteConnectsSecured keeps every connection of this suite on the
// security of the broker under test, so that the whole suite runs on a
// secured broker (SLUICE_TEST_KAFKA_SECURE=1, or Apache Kafka over
// SASL_SSL and MinIO over HTTPS): a test's own Kafka client names the
// brokers through seed() (kgo.SeedBrokers anywhere else is a client
// without the security), a process it starts inherits this process's
// environment (the SLUICE_KAFKA_* variables) and reaches MinIO through
// s3Process (the CA file with the endpoint).
func TestSuiteConnectsSecured(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("the suite's files: %v %v", files, err)
	}
	fset := token.NewFileSet()
	var bad []string
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			name := fn.Name.Name
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				at := func(what string) { bad = append(bad, fset.Position(n.Pos()).String()+" ("+name+"): "+what) }
				switch n := n.(type) {
				case *ast.CallExpr:
					if isSelector(n.Fun, "kgo", "SeedBrokers") && ownSecurity[name] == "" {
						at("kgo.SeedBrokers: a client without the broker's security; use seed()")
					}
				case *ast.AssignStmt:
					for i, lhs := range n.Lhs {
						if sel, ok := lhs.(*ast.SelectorExpr); ok && sel.Sel.Name == "Env" && i < len(n.Rhs) && !inheritsEnviron(n.Rhs[i]) {
							at("a process's Env not built on os.Environ(): it loses SLUICE_KAFKA_*")
						}
					}
				case *ast.CompositeLit:
					for _, e := range n.Elts {
						if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING && name != "s3Process" {
							if s, _ := strconv.Unquote(lit.Value); s == "--s3-endpoint" {
								at("--s3-endpoint without s3Process: no CA file for MinIO over HTTPS")
							}
						}
					}
				}
				return true
			})
		}
	}
	if len(bad) > 0 {
		t.Fatalf("connections without the broker's security:\n%s", strings.Join(bad, "\n"))
	}
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// inheritsEnviron reports whether e is append(os.Environ(), ...).
func inheritsEnviron(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return false
	}
	if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "append" {
		return false
	}
	first, ok := call.Args[0].(*ast.CallExpr)
	return ok && isSelector(first.Fun, "os", "Environ")
}
