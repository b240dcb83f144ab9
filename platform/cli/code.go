package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry"
)

// DefaultDescribeTimeout bounds `BINARY describe --json` at `sluice code
// push` (--describe-timeout): a binary that has not answered by then is
// stopped and refused.
const DefaultDescribeTimeout = 10 * time.Second

func runCode(ctx context.Context, args []string, env Env) error {
	return runGroup(ctx, "code", map[string]func(context.Context, []string, Env) error{
		"push": codePush, "ls": codeList, "alias": codeAlias, "rm": codeRemove, "pull": codePull,
	}, args, env)
}

func codePush(ctx context.Context, args []string, env Env) error {
	var opts bundleOptions
	var alias *string
	return registryCall(ctx, "code push", args, env, func(fset *flagSet) {
		alias = fset.String("alias", "", "also point this alias at the new version")
		fset.StringVar(&opts.format, "format", "", "go-binary (PATH is the binary), python-project (PATH is the project's directory) or image (PATH is an image reference) (default: go-binary for a file, python-project for a directory)")
		fset.StringVar(&opts.manifest, "manifest", "", "JSON file to record as the manifest instead of running BINARY describe --json (for a binary this machine cannot run)")
		fset.DurationVar(&opts.timeout, "describe-timeout", DefaultDescribeTimeout, "how long BINARY describe --json (python -m sluice describe) may take")
		fset.StringVar(&opts.importPath, "import-path", "", "python-project: MODULE:ATTR of the application to describe as the manifest (its environment is prepared and cached first)")
	}, func(conn *grpc.ClientConn, pos []string) error {
		name, path := pos[0], pos[1]
		_, err := pushBundleVersion(ctx, conn, name, path, *alias, opts, env)
		return err
	})
}

// pushBundleVersion pushes PATH as a new version of bundle name (and
// points alias at it when not empty), printing what was pushed, and
// returns the version.
func pushBundleVersion(ctx context.Context, conn *grpc.ClientConn, name, path, alias string, opts bundleOptions, env Env) (*sluicev1.BundleVersion, error) {
	if err := registry.CheckBundleNames(name, alias); err != nil { // before reading a byte
		return nil, &ExitError{Code: 2, Err: err}
	}
	b, err := prepareBundle(ctx, path, opts, env)
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	hdr := &sluicev1.PushBundleHeader{Name: name, Alias: alias, Format: b.format, Manifest: string(b.manifest), Image: b.image}
	var total int64
	hdr.Files, total = manifestFiles(b.files)
	stream, err := sluicev1.NewCodeClient(conn).PushBundle(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&sluicev1.PushBundleRequest{Part: &sluicev1.PushBundleRequest_Header{Header: hdr}}); err != nil {
		return nil, err
	}
	bar := newProgress(env.Stderr, "push "+name, total)
	if err := pushFiles(b.files, bar, func(c []byte) error {
		return stream.Send(&sluicev1.PushBundleRequest{Part: &sluicev1.PushBundleRequest_Chunk{Chunk: c}})
	}); err != nil {
		return nil, err
	}
	v, err := stream.CloseAndRecv()
	bar.done(err == nil && total > 0)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Stdout, "pushed %s version %s (%s, %s)\n", v.GetName(), v.GetVersion(), v.GetFormat(), bundleContent(v))
	return v, nil
}

// bundleContent says what a version holds: its image, or its files.
func bundleContent(v *sluicev1.BundleVersion) string {
	if v.GetImage() != "" {
		return v.GetImage()
	}
	return fmt.Sprintf("%s, %d files", humanBytes(v.GetSize()), len(v.GetFiles()))
}

func codeList(ctx context.Context, args []string, env Env) error {
	return registryCall(ctx, "code ls", args, env, nil, func(conn *grpc.ClientConn, pos []string) error {
		client := sluicev1.NewCodeClient(conn)
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		defer tw.Flush()
		if len(pos) == 0 {
			resp, err := client.ListBundles(ctx, &sluicev1.ListBundlesRequest{})
			if err != nil {
				return err
			}
			fmt.Fprintln(tw, "BUNDLE\tVERSIONS\tLATEST\tALIASES")
			for _, b := range resp.GetBundles() {
				var versions []string
				for _, v := range b.GetVersions() {
					versions = append(versions, v.GetVersion())
				}
				writeEntryRow(tw, b.GetName(), versions, b.GetAliases())
			}
			return nil
		}
		b, err := client.GetBundle(ctx, &sluicev1.GetBundleRequest{Name: pos[0]})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "VERSION\tFORMAT\tSIZE\tFILES\tCREATED\tALIASES\tIMAGE")
		for _, v := range b.GetVersions() {
			writeVersionRow(tw, v.GetVersion(), v.GetFormat(), v.GetSize(), len(v.GetFiles()), v.GetCreatedMs(), v.GetAliases(), v.GetImage())
		}
		return nil
	})
}

func codeAlias(ctx context.Context, args []string, env Env) error {
	return registryCall(ctx, "code alias", args, env, nil, func(conn *grpc.ClientConn, pos []string) error {
		b, err := sluicev1.NewCodeClient(conn).SetBundleAlias(ctx, &sluicev1.SetBundleAliasRequest{Name: pos[0], Alias: pos[1], Version: pos[2]})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s@%s → %s\n", pos[0], pos[1], b.GetAliases()[pos[1]])
		return nil
	})
}

func codeRemove(ctx context.Context, args []string, env Env) error {
	var force *bool
	return registryCall(ctx, "code rm", args, env, func(fset *flagSet) {
		force = fset.Bool("force", false, "delete even if aliases point at it (they are removed)")
	}, func(conn *grpc.ClientConn, pos []string) error {
		if _, err := sluicev1.NewCodeClient(conn).DeleteBundleVersion(ctx, &sluicev1.DeleteBundleVersionRequest{Name: pos[0], Version: pos[1], Force: *force}); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "deleted %s version %s\n", pos[0], pos[1])
		return nil
	})
}

func codePull(ctx context.Context, args []string, env Env) error {
	return registryCall(ctx, "code pull", args, env, nil, func(conn *grpc.ClientConn, pos []string) error {
		name, version := registry.ParseBundleRef(pos[0])
		dir := pos[1]
		stream, err := sluicev1.NewCodeClient(conn).PullBundle(ctx, &sluicev1.PullBundleRequest{Name: name, Version: version})
		if err != nil {
			return err
		}
		first, err := stream.Recv()
		if err != nil {
			return err
		}
		v := first.GetHeader()
		if v == nil {
			return errors.New("pull: the registry sent no header")
		}
		if v.GetFormat() == registry.FormatImage {
			fmt.Fprintf(env.Stdout, "%s version %s is the image %s: nothing to download\n", name, v.GetVersion(), v.GetImage())
			return nil
		}
		perm := os.FileMode(0o644)
		if v.GetFormat() == registry.FormatGoBinary {
			perm = 0o755
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := pullFiles(dir, v.GetFiles(), perm, newProgress(env.Stderr, "pull "+name, v.GetSize()), stream.Recv); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "pulled %s version %s into %s (%s, %s, checksums verified)\n", name, v.GetVersion(), dir, v.GetFormat(), bundleContent(v))
		return nil
	})
}
