namespace LaPerm.Cli;

public static class CommandLine
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("laperm: not implemented yet");
        return 2;
    }
}
