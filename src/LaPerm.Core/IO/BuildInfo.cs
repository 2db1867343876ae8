using System.Reflection;

namespace LaPerm.Core.IO;

/// <summary>Which build this is: the version and the commit it was built from (the SDK appends it: 1.0.0+SHA).</summary>
public static class BuildInfo
{
    public static string Version { get; } =
        typeof(BuildInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
}
