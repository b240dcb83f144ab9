package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
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

// modelsUsage lists the models subcommands.
func modelsUsage(w io.Writer) {
	fmt.Fprint(w, "usage: sluice models <command> [arguments] [flags]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range commandHelps {
		if sub, ok := strings.CutPrefix(h.name, "models "); ok {
			fmt.Fprintf(tw, "  %s %s\t%s\n", sub, h.args, h.summary)
		}
	}
	tw.Flush()
	fmt.Fprint(w, `
They find the platform with --addr, or SLUICE_ADDR (default 127.0.0.1:8000),
as every client command does: the platform serves gRPC on its REST address.
Run 'sluice models <command> --help' for a command's flags.
`)
}

var modelsCommands = []string{"push", "ls", "alias", "rm", "pull", "help"}

func runModels(ctx context.Context, args []string, env Env) error {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		// Flags before the command: sluice models --addr A ls.
		if i := slices.IndexFunc(args, func(a string) bool { return slices.Contains(modelsCommands, a) }); i > 0 {
			args = append(append([]string{args[i]}, args[:i]...), args[i+1:]...)
		}
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		modelsUsage(env.Stderr)
		return usageError("models: no command given")
	}
	switch args[0] {
	case "push":
		return modelsPush(ctx, args[1:], env)
	case "ls":
		return modelsList(ctx, args[1:], env)
	case "alias":
		return modelsAlias(ctx, args[1:], env)
	case "rm":
		return modelsRemove(ctx, args[1:], env)
	case "pull":
		return modelsPull(ctx, args[1:], env)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[1] != "help" && !strings.HasPrefix(args[1], "-") {
			return runModels(ctx, []string{args[1], "--help"}, env)
		}
		modelsUsage(env.Stdout)
		return nil
	}
	modelsUsage(env.Stderr)
	return usageError("models: unknown command %q", args[0])
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// modelsClient registers --addr and the deprecated --grpc-addr; dial
// connects after parsing. Artifacts stream over gRPC, which the platform
// serves on its REST address too (see front), so the models commands
// find it where every other client command does.
func modelsClient(fset *flagSet) func() (sluicev1.ModelsClient, func(), error) {
	addr := addrFlag(fset)
	grpcAddr := fset.envString("grpc-addr", "SLUICE_GRPC_ADDR", "", "deprecated: the platform's gRPC address; --addr serves gRPC too")
	return func() (sluicev1.ModelsClient, func(), error) {
		a := *addr
		// The deprecated flag wins when given; its variable when --addr
		// is not.
		if *grpcAddr != "" && (fset.given("grpc-addr") || !fset.given("addr")) {
			fmt.Fprintln(fset.env.Stderr, "sluice: --grpc-addr and SLUICE_GRPC_ADDR are deprecated: --addr (SLUICE_ADDR) reaches the registry too")
			a = *grpcAddr
		}
		target, creds, err := grpcTarget(a)
		if err != nil {
			return nil, nil, err
		}
		conn, err := grpc.NewClient(target, append(registry.BulkDialOptions(), grpc.WithTransportCredentials(creds))...)
		if err != nil {
			return nil, nil, err
		}
		return sluicev1.NewModelsClient(conn), func() { conn.Close() }, nil
	}
}

// grpcTarget is where and how gRPC reaches the platform at addr: host:port
// or an http:// URL in clear text, an https:// URL with TLS (a proxy in
// front of the platform).
func grpcTarget(addr string) (string, credentials.TransportCredentials, error) {
	if !strings.Contains(addr, "://") {
		return addr, insecure.NewCredentials(), nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", nil, usageError("--addr: %v", err)
	}
	if strings.Trim(u.Path, "/") != "" {
		return "", nil, usageError("--addr %s: the models commands need the platform at the root of a host, not under a path", addr)
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
		return hostPort("443"), credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}), nil
	}
	return "", nil, usageError("--addr %s: want host:port, or an http:// or https:// URL", addr)
}

// rpcError turns a gRPC status into a CLI error: exit 2 for the caller's
// mistakes, 1 otherwise.
func rpcError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("registry not reachable: %s", st.Message())
	case codes.Unimplemented:
		return fmt.Errorf("this address serves no model registry (%s): is it a sluice platform (`sluice dev` or `sluice gateway`)?", st.Message())
	case codes.InvalidArgument:
		return &ExitError{Code: 2, Err: errors.New(st.Message())}
	}
	return errors.New(st.Message())
}

func modelsPush(ctx context.Context, args []string, env Env) error {
	fset := newFlags("models push", env)
	dial := modelsClient(fset)
	version := fset.String("version", "", "version to publish (default: the next number)")
	alias := fset.String("alias", "", "also point this alias at the new version")
	format := fset.String("format", "", "artifact format (default: tensorflow-savedmodel for a SavedModel directory, sluice-linear for a linear model.json)")
	sigPath := fset.String("signature", "", `JSON file {"inputs": [{"name", "datatype", "shape"}], "outputs": [...]} (default: a SavedModel's sluice-signature.json, a linear model's own)`)
	var labels listFlag
	fset.Var(&labels, "label", "label key=value (repeatable)")
	if err := parse(fset, args); err != nil {
		return err
	}
	pos := fset.Args()
	name, root := pos[0], pos[1]
	if err := registry.CheckNames(name, *version, *alias); err != nil { // before reading a byte
		return &ExitError{Code: 2, Err: err}
	}
	files, err := scanArtifact(root)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	hdr := &sluicev1.PushHeader{Model: name, Version: *version, Alias: *alias, Format: *format, Labels: map[string]string{}}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return usageError("--label %q is not key=value", l)
		}
		hdr.Labels[k] = v
	}
	if err := describeArtifact(root, hdr, *sigPath); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	var total int64
	for _, f := range files {
		hdr.Files = append(hdr.Files, &sluicev1.ArtifactFile{Path: f.rel, Size: f.size, Sha256: f.sha256})
		total += f.size
	}
	client, closeConn, err := dial()
	if err != nil {
		return err
	}
	defer closeConn()
	stream, err := client.PushVersion(ctx)
	if err != nil {
		return rpcError(err)
	}
	if err := stream.Send(&sluicev1.PushVersionRequest{Part: &sluicev1.PushVersionRequest_Header{Header: hdr}}); err != nil {
		return rpcError(err)
	}
	bar := newProgress(env.Stderr, "push "+name, total)
	buf := make([]byte, registry.MaxChunk/2)
	for _, f := range files {
		err := sendFile(f.abs, buf, func(b []byte) error {
			bar.add(len(b))
			return stream.Send(&sluicev1.PushVersionRequest{Part: &sluicev1.PushVersionRequest_Chunk{Chunk: b}})
		})
		if errors.Is(err, io.EOF) {
			break // the server ended the stream early: CloseAndRecv has its status
		}
		if err != nil {
			return err
		}
	}
	v, err := stream.CloseAndRecv()
	bar.done(err == nil)
	if err != nil {
		return rpcError(err)
	}
	fmt.Fprintf(env.Stdout, "pushed %s version %s (%s, %d files)\n", v.GetModel(), v.GetVersion(), humanBytes(v.GetSize()), len(v.GetFiles()))
	return nil
}

type artifactFile struct {
	abs, rel, sha256 string
	size             int64
}

// scanArtifact lists a file or a directory tree's regular files, sorted,
// with their sizes and SHA-256 (the registry checks what it receives).
func scanArtifact(root string) ([]artifactFile, error) {
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
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		return add(p, rel)
	})
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("%s has no files", root)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, err
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

func modelsList(ctx context.Context, args []string, env Env) error {
	fset := newFlags("models ls", env)
	dial := modelsClient(fset)
	if err := parse(fset, args); err != nil {
		return err
	}
	client, closeConn, err := dial()
	if err != nil {
		return err
	}
	defer closeConn()
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if fset.NArg() == 0 {
		resp, err := client.ListModels(ctx, &sluicev1.ListModelsRequest{})
		if err != nil {
			return rpcError(err)
		}
		fmt.Fprintln(tw, "MODEL\tVERSIONS\tLATEST\tALIASES")
		for _, m := range resp.GetModels() {
			latest := ""
			if vs := m.GetVersions(); len(vs) > 0 {
				latest = vs[len(vs)-1].GetVersion()
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", m.GetName(), len(m.GetVersions()), latest, aliasList(m.GetAliases()))
		}
		return nil
	}
	m, err := client.GetModel(ctx, &sluicev1.GetModelRequest{Name: fset.Arg(0)})
	if err != nil {
		return rpcError(err)
	}
	fmt.Fprintln(tw, "VERSION\tFORMAT\tSIZE\tFILES\tCREATED\tALIASES")
	for _, v := range m.GetVersions() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", v.GetVersion(), v.GetFormat(), humanBytes(v.GetSize()), len(v.GetFiles()),
			time.UnixMilli(v.GetCreatedMs()).UTC().Format(time.RFC3339), strings.Join(v.GetAliases(), ","))
	}
	return nil
}

func aliasList(m map[string]string) string {
	var out []string
	for a, v := range m {
		out = append(out, a+"→"+v)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func modelsAlias(ctx context.Context, args []string, env Env) error {
	fset := newFlags("models alias", env)
	dial := modelsClient(fset)
	if err := parse(fset, args); err != nil {
		return err
	}
	pos := fset.Args()
	client, closeConn, err := dial()
	if err != nil {
		return err
	}
	defer closeConn()
	if _, err := client.SetAlias(ctx, &sluicev1.SetAliasRequest{Model: pos[0], Alias: pos[1], Version: pos[2]}); err != nil {
		return rpcError(err)
	}
	fmt.Fprintf(env.Stdout, "%s@%s → %s\n", pos[0], pos[1], pos[2])
	return nil
}

func modelsRemove(ctx context.Context, args []string, env Env) error {
	fset := newFlags("models rm", env)
	dial := modelsClient(fset)
	force := fset.Bool("force", false, "delete even if aliases point at it (they are removed)")
	if err := parse(fset, args); err != nil {
		return err
	}
	pos := fset.Args()
	client, closeConn, err := dial()
	if err != nil {
		return err
	}
	defer closeConn()
	if _, err := client.DeleteVersion(ctx, &sluicev1.DeleteVersionRequest{Model: pos[0], Version: pos[1], Force: *force}); err != nil {
		return rpcError(err)
	}
	fmt.Fprintf(env.Stdout, "deleted %s version %s\n", pos[0], pos[1])
	return nil
}

// parseRef splits NAME[:VERSION|@ALIAS] into a model and a version
// reference ("" for the highest, "@alias" for an alias).
func parseRef(ref string) (model, version string) {
	if i := strings.IndexAny(ref, ":@"); i >= 0 {
		if ref[i] == '@' {
			return ref[:i], ref[i:]
		}
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

func modelsPull(ctx context.Context, args []string, env Env) error {
	fset := newFlags("models pull", env)
	dial := modelsClient(fset)
	if err := parse(fset, args); err != nil {
		return err
	}
	pos := fset.Args()
	model, version := parseRef(pos[0])
	dir := pos[1]
	client, closeConn, err := dial()
	if err != nil {
		return err
	}
	defer closeConn()
	stream, err := client.PullVersion(ctx, &sluicev1.PullVersionRequest{Model: model, Version: version})
	if err != nil {
		return rpcError(err)
	}
	first, err := stream.Recv()
	if err != nil {
		return rpcError(err)
	}
	v := first.GetHeader()
	if v == nil {
		return errors.New("pull: the registry sent no manifest")
	}
	bar := newProgress(env.Stderr, "pull "+model, v.GetSize())
	w := &pullWriter{dir: dir, files: v.GetFiles(), bar: bar}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.abort()
			return rpcError(err)
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
	fmt.Fprintf(env.Stdout, "pulled %s version %s into %s (%s, %d files, checksums verified)\n", model, v.GetVersion(), dir, humanBytes(v.GetSize()), len(v.GetFiles()))
	return nil
}

// pullWriter cuts the chunk stream into the manifest's files, writing each
// to a temporary file, checking its size and SHA-256, then renaming it.
type pullWriter struct {
	dir   string
	files []*sluicev1.ArtifactFile
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
