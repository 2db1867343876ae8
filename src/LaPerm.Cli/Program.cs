return LaPerm.Cli.CommandLine.Run(args);
