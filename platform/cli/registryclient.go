package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry"
)

// What the registry's command groups share, `sluice models` and `sluice
// code`: dispatch, the connection, streaming files up with a progress
// bar and down with checksums, and the tables of ls.

// runGroup dispatches a command group (models, code) on its subcommand,
// flags before the subcommand included (sluice models --addr A ls).
func runGroup(ctx context.Context, group string, cmds map[string]func(context.Context, []string, Env) error, args []string, env Env) error {
	isCmd := func(a string) bool { _, ok := cmds[a]; return ok || a == "help" }
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		if i := slices.IndexFunc(args, isCmd); i > 0 {
			args = append(append([]string{args[i]}, args[:i]...), args[i+1:]...)
		}
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		groupUsage(env.Stderr, group)
		return usageError("%s: no command given", group)
	}
	if run, ok := cmds[args[0]]; ok {
		return run(ctx, args[1:], env)
	}
	if args[0] == "help" || isHelp(args[0]) {
		if len(args) > 1 && args[1] != "help" && !strings.HasPrefix(args[1], "-") {
			return runGroup(ctx, group, cmds, []string{args[1], "--help"}, env)
		}
		groupUsage(env.Stdout, group)
		return nil
	}
	groupUsage(env.Stderr, group)
	return usageError("%s: unknown command %q", group, args[0])
}

// groupUsage lists a group's subcommands from commandHelps.
func groupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "usage: sluice %s <command> [arguments] [flags]\n\ncommands:\n", group)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range commandHelps {
		if sub, ok := strings.CutPrefix(h.name, group+" "); ok {
			fmt.Fprintf(tw, "  %s %s\t%s\n", sub, h.args, h.summary)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, `
They find the platform with --addr, or SLUICE_ADDR (default 127.0.0.1:8000),
as every client command does: the platform serves gRPC on its REST address.
Run 'sluice %s <command> --help' for a command's flags.
`, group)
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// registryDial registers --addr (and, with deprecated, the deprecated
// --grpc-addr of the models commands); dial connects after parsing.
// Artifacts stream over gRPC, which the platform serves on its REST
// address too (see front), so the registry commands find it where every
// other client command does.
func registryDial(fset *flagSet, deprecated bool) func() (*grpc.ClientConn, error) {
	addr := addrFlag(fset)
	grpcAddr := new(string)
	if deprecated {
		grpcAddr = fset.envString("grpc-addr", "SLUICE_GRPC_ADDR", "", "deprecated: the platform's gRPC address; --addr serves gRPC too")
	}
	return func() (*grpc.ClientConn, error) {
		a := *addr
		// The deprecated flag wins when given; its variable when --addr
		// is not.
		if *grpcAddr != "" && (fset.given("grpc-addr") || !fset.given("addr")) {
			fmt.Fprintln(fset.env.Stderr, "sluice: --grpc-addr and SLUICE_GRPC_ADDR are deprecated: --addr (SLUICE_ADDR) reaches the registry too")
			a = *grpcAddr
		}
		target, creds, err := grpcTarget(a, fset.env)
		if err != nil {
			return nil, err
		}
		opts := append(registry.BulkDialOptions(), grpc.WithTransportCredentials(creds))
		return grpc.NewClient(target, append(opts, tokenDialOptions(fset.env)...)...)
	}
}

// registryCall runs a registry subcommand: it declares the command's
// flags (flags adds its own), parses them, connects and hands the
// connection and the positional arguments to call. A gRPC status that
// call returns becomes the command's error (rpcError); any other error
// is returned as it is.
func registryCall(ctx context.Context, name string, args []string, env Env, flags func(*flagSet), call func(conn *grpc.ClientConn, pos []string) error) error {
	fset := newFlags(name, env)
	dial := registryDial(fset, strings.HasPrefix(name, "models ")) // only they ever had --grpc-addr
	if flags != nil {
		flags(fset)
	}
	if err := parse(fset, args); err != nil {
		return err
	}
	conn, err := dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	return rpcError(call(conn, fset.Args()))
}

// grpcTarget is where and how gRPC reaches the platform at addr: host:port
// or an http:// URL in clear text, an https:// URL with TLS (the
// gateway's own, or a proxy's in front of it), trusting SLUICE_CA_FILE.
func grpcTarget(addr string, env Env) (string, credentials.TransportCredentials, error) {
	if !strings.Contains(addr, "://") {
		return addr, insecure.NewCredentials(), nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", nil, usageError("--addr: %v", err)
	}
	if strings.Trim(u.Path, "/") != "" {
		return "", nil, usageError("--addr %s: the registry commands need the platform at the root of a host, not under a path", addr)
	}
	hostPort := func(port string) string {
		if u.Port() != "" {
			return u.Host
		}
		return net.JoinHostPort(u.Hostname(), port)
	}
	switch u.Scheme {
	case "http":
		return hostPort("80"), insecure.NewCredentials(), nil
	case "https":
		c, err := clientTLS(env)
		if err != nil {
			return "", nil, err
		}
		return hostPort("443"), credentials.NewTLS(c), nil
	}
	return "", nil, usageError("--addr %s: want host:port, or an http:// or https:// URL", addr)
}

// rpcError turns a gRPC status into a CLI error: exit 2 for the caller's
// mistakes, 1 otherwise. Other errors pass as they are.
func rpcError(err error) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("registry not reachable: %s", st.Message())
	case codes.Unimplemented:
		return fmt.Errorf("this address serves no registry API for this command (%s): is it a sluice platform (`sluice dev` or `sluice gateway`), as new as this client?", st.Message())
	case codes.InvalidArgument:
		return &ExitError{Code: 2, Err: errors.New(st.Message())}
	}
	return errors.New(st.Message())
}

type artifactFile struct {
	abs, rel, sha256 string
	size             int64
}

// scanArtifact lists a file or a directory tree's regular files, sorted,
// with their sizes and SHA-256 (the registry checks what it receives).
// skip, when not nil, leaves out the files and directories it names (by
// path relative to root).
func scanArtifact(root string, skip func(rel string, d fs.DirEntry) bool) ([]artifactFile, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	var files []artifactFile
	add := func(abs, rel string) error {
		sum, size, err := hashFile(abs)
		if err != nil {
			return err
		}
		files = append(files, artifactFile{abs: abs, rel: filepath.ToSlash(rel), sha256: sum, size: size})
		return nil
	}
	if !st.IsDir() {
		return files, add(root, filepath.Base(root))
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip != nil && rel != "." && skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		return add(p, rel)
	})
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("%s has no files", root)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, err
}

// manifestFiles is files as a push header lists them, and their total size.
func manifestFiles(files []artifactFile) ([]*sluicev1.ArtifactFile, int64) {
	var out []*sluicev1.ArtifactFile
	var total int64
	for _, f := range files {
		out = append(out, &sluicev1.ArtifactFile{Path: f.rel, Size: f.size, Sha256: f.sha256})
		total += f.size
	}
	return out, total
}

// pushFiles streams the files' content through send, in order, counting
// on bar. It stops without an error when the server ends the stream early:
// the reply's status says why.
func pushFiles(files []artifactFile, bar *progress, send func([]byte) error) error {
	buf := make([]byte, registry.MaxChunk/2)
	for _, f := range files {
		err := sendFile(f.abs, buf, func(b []byte) error {
			bar.add(len(b))
			return send(b)
		})
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func sendFile(p string, buf []byte, send func([]byte) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return registry.SendChunks(f, buf, send)
}

// writeEntryRow writes a row of `ls`: a name, its number of versions,
// the highest and the aliases.
func writeEntryRow(tw io.Writer, name string, versions []string, aliases map[string]string) {
	latest := ""
	if len(versions) > 0 {
		latest = versions[len(versions)-1]
	}
	fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, len(versions), latest, aliasList(aliases))
}

// writeVersionRow writes a row of `ls NAME`: one version.
func writeVersionRow(tw io.Writer, version, format string, size int64, files int, createdMs int64, aliases []string, extra ...string) {
	fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s", version, format, humanBytes(size), files,
		time.UnixMilli(createdMs).UTC().Format(time.RFC3339), strings.Join(aliases, ","))
	for _, e := range extra {
		fmt.Fprintf(tw, "\t%s", e)
	}
	fmt.Fprintln(tw)
}

func aliasList(m map[string]string) string {
	var out []string
	for a, v := range m {
		out = append(out, a+"→"+v)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// chunkMessage is a pull stream's message after its header.
type chunkMessage interface{ GetChunk() []byte }

// pullFiles receives the chunks of a pull stream's files into dir, each
// checked against its size and SHA-256 and renamed into place, with mode
// perm (0: as os.CreateTemp makes them). On failure no partial file is
// left.
func pullFiles[M chunkMessage](dir string, files []*sluicev1.ArtifactFile, perm os.FileMode, bar *progress, recv func() (M, error)) error {
	w := &pullWriter{dir: dir, files: files, perm: perm, bar: bar}
	for {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.abort()
			return err
		}
		if err := w.write(msg.GetChunk()); err != nil {
			w.abort()
			return err
		}
	}
	if err := w.finish(); err != nil {
		w.abort()
		return err
	}
	bar.done(true)
	return nil
}

// pullWriter cuts the chunk stream into the manifest's files, writing each
// to a temporary file, checking its size and SHA-256, then renaming it.
type pullWriter struct {
	dir   string
	files []*sluicev1.ArtifactFile
	perm  os.FileMode
	bar   *progress
	i     int // current file
	f     *os.File
	h     interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (w *pullWriter) write(b []byte) error {
	for len(b) > 0 {
		if w.f == nil {
			if err := w.open(); err != nil {
				return err
			}
		}
		want := w.files[w.i].GetSize() - w.n
		k := int64(len(b))
		if k > want {
			k = want
		}
		if _, err := w.f.Write(b[:k]); err != nil {
			return err
		}
		w.h.Write(b[:k])
		w.n += k
		w.bar.add(int(k))
		b = b[k:]
		if w.n == w.files[w.i].GetSize() {
			if err := w.close(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *pullWriter) open() error {
	if w.i >= len(w.files) {
		return errors.New("pull: more content than the manifest lists")
	}
	p := filepath.Join(w.dir, filepath.FromSlash(w.files[w.i].GetPath()))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".pull-*")
	if err != nil {
		return err
	}
	w.f, w.h, w.n = f, sha256.New(), 0
	return nil
}

func (w *pullWriter) close() error {
	fm := w.files[w.i]
	tmp := w.f.Name()
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	if got := hex.EncodeToString(w.h.Sum(nil)); got != fm.GetSha256() {
		os.Remove(tmp)
		return fmt.Errorf("pull: %s: checksum mismatch: manifest says %s, received %s", fm.GetPath(), fm.GetSha256(), got)
	}
	if w.perm != 0 {
		if err := os.Chmod(tmp, w.perm); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, filepath.FromSlash(fm.GetPath()))); err != nil {
		return err
	}
	w.i++
	return nil
}

func (w *pullWriter) finish() error {
	for w.i < len(w.files) && w.files[w.i].GetSize() == 0 { // empty files get no chunks
		if err := w.open(); err != nil {
			return err
		}
		if err := w.close(); err != nil {
			return err
		}
	}
	if w.i != len(w.files) {
		return fmt.Errorf("pull: stream ended at file %d of %d", w.i, len(w.files))
	}
	return nil
}

func (w *pullWriter) abort() {
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
	}
}

// progress shows bytes, rate and ETA: a redrawn line on a terminal, a
// plain line every 10 % otherwise.
type progress struct {
	w         io.Writer
	label     string
	total     int64
	n         int64
	start     time.Time
	last      time.Time
	tty       bool
	lastTenth int64
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) add(n int) {
	p.n += int64(n)
	now := time.Now()
	switch {
	case p.tty && now.Sub(p.last) >= 100*time.Millisecond:
		p.last = now
		fmt.Fprintf(p.w, "\r%s", p.line(now))
	case !p.tty && p.total > 0 && p.n*10/p.total > p.lastTenth:
		p.lastTenth = p.n * 10 / p.total
		fmt.Fprintln(p.w, p.line(now))
	}
}

func (p *progress) line(now time.Time) string {
	secs := now.Sub(p.start).Seconds()
	rate := float64(p.n) / max(secs, 1e-3)
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.n) / float64(p.total)
	}
	eta := "-"
	if rate > 0 && p.total > p.n {
		eta = time.Duration(float64(p.total-p.n) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%s  %s / %s  %3.0f%%  %s/s  ETA %s", p.label, humanBytes(p.n), humanBytes(p.total), pct, humanBytes(int64(rate)), eta)
}

func (p *progress) done(ok bool) {
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\n", p.line(time.Now()))
	} else if ok && p.lastTenth < 10 {
		fmt.Fprintln(p.w, p.line(time.Now()))
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
