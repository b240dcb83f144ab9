package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc"

	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry"
)

func runModels(ctx context.Context, args []string, env Env) error {
	return runGroup(ctx, "models", map[string]func(context.Context, []string, Env) error{
		"push": modelsPush, "ls": modelsList, "alias": modelsAlias, "rm": modelsRemove, "pull": modelsPull, "fetch": modelsFetch,
	}, args, env)
}

func modelsPush(ctx context.Context, args []string, env Env) error {
	var version, alias, format, sigPath *string
	var labels listFlag
	return registryCall(ctx, "models push", args, env, func(fset *flagSet) {
		version = fset.String("version", "", "version to publish (default: the next number)")
		alias = fset.String("alias", "", "also point this alias at the new version")
		format = fset.String("format", "", "artifact format (default: tensorflow-savedmodel for a SavedModel directory, sluice-linear for a linear model.json)")
		sigPath = fset.String("signature", "", `JSON file {"inputs": [{"name", "datatype", "shape"}], "outputs": [...]} (default: a SavedModel's sluice-signature.json, a linear model's own)`)
		fset.Var(&labels, "label", "label key=value (repeatable)")
	}, func(conn *grpc.ClientConn, pos []string) error {
		name, root := pos[0], pos[1]
		if err := registry.CheckNames(name, *version, *alias); err != nil { // before reading a byte
			return &ExitError{Code: 2, Err: err}
		}
		files, err := scanArtifact(root, nil)
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
		hdr.Files, total = manifestFiles(files)
		stream, err := sluicev1.NewModelsClient(conn).PushVersion(ctx)
		if err != nil {
			return err
		}
		if err := stream.Send(&sluicev1.PushVersionRequest{Part: &sluicev1.PushVersionRequest_Header{Header: hdr}}); err != nil {
			return err
		}
		bar := newProgress(env.Stderr, "push "+name, total)
		if err := pushFiles(files, bar, func(b []byte) error {
			return stream.Send(&sluicev1.PushVersionRequest{Part: &sluicev1.PushVersionRequest_Chunk{Chunk: b}})
		}); err != nil {
			return err
		}
		v, err := stream.CloseAndRecv()
		bar.done(err == nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "pushed %s version %s (%s, %d files)\n", v.GetModel(), v.GetVersion(), humanBytes(v.GetSize()), len(v.GetFiles()))
		return nil
	})
}

func modelsList(ctx context.Context, args []string, env Env) error {
	return registryCall(ctx, "models ls", args, env, nil, func(conn *grpc.ClientConn, pos []string) error {
		client := sluicev1.NewModelsClient(conn)
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		defer tw.Flush()
		if len(pos) == 0 {
			resp, err := client.ListModels(ctx, &sluicev1.ListModelsRequest{})
			if err != nil {
				return err
			}
			fmt.Fprintln(tw, "MODEL\tVERSIONS\tLATEST\tALIASES")
			for _, m := range resp.GetModels() {
				var versions []string
				for _, v := range m.GetVersions() {
					versions = append(versions, v.GetVersion())
				}
				writeEntryRow(tw, m.GetName(), versions, m.GetAliases())
			}
			return nil
		}
		m, err := client.GetModel(ctx, &sluicev1.GetModelRequest{Name: pos[0]})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "VERSION\tFORMAT\tSIZE\tFILES\tCREATED\tALIASES")
		for _, v := range m.GetVersions() {
			writeVersionRow(tw, v.GetVersion(), v.GetFormat(), v.GetSize(), len(v.GetFiles()), v.GetCreatedMs(), v.GetAliases())
		}
		return nil
	})
}

func modelsAlias(ctx context.Context, args []string, env Env) error {
	return registryCall(ctx, "models alias", args, env, nil, func(conn *grpc.ClientConn, pos []string) error {
		if _, err := sluicev1.NewModelsClient(conn).SetAlias(ctx, &sluicev1.SetAliasRequest{Model: pos[0], Alias: pos[1], Version: pos[2]}); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s@%s → %s\n", pos[0], pos[1], pos[2])
		return nil
	})
}

func modelsRemove(ctx context.Context, args []string, env Env) error {
	var force *bool
	return registryCall(ctx, "models rm", args, env, func(fset *flagSet) {
		force = fset.Bool("force", false, "delete even if aliases point at it (they are removed)")
	}, func(conn *grpc.ClientConn, pos []string) error {
		if _, err := sluicev1.NewModelsClient(conn).DeleteVersion(ctx, &sluicev1.DeleteVersionRequest{Model: pos[0], Version: pos[1], Force: *force}); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "deleted %s version %s\n", pos[0], pos[1])
		return nil
	})
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
	return registryCall(ctx, "models pull", args, env, nil, func(conn *grpc.ClientConn, pos []string) error {
		model, version := parseRef(pos[0])
		dir := pos[1]
		stream, err := sluicev1.NewModelsClient(conn).PullVersion(ctx, &sluicev1.PullVersionRequest{Model: model, Version: version})
		if err != nil {
			return err
		}
		first, err := stream.Recv()
		if err != nil {
			return err
		}
		v := first.GetHeader()
		if v == nil {
			return errors.New("pull: the registry sent no manifest")
		}
		if err := pullFiles(dir, v.GetFiles(), 0, newProgress(env.Stderr, "pull "+model, v.GetSize()), stream.Recv); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "pulled %s version %s into %s (%s, %d files, checksums verified)\n", model, v.GetVersion(), dir, humanBytes(v.GetSize()), len(v.GetFiles()))
		return nil
	})
}
