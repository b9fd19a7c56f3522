package dev.maestro.intellij

import com.intellij.execution.configurations.GeneralCommandLine
import com.intellij.openapi.project.Project
import com.intellij.openapi.vfs.VirtualFile
import com.redhat.devtools.lsp4ij.server.OSProcessStreamConnectionProvider

/** Launches `maestro lsp` (stdio) in the project's base directory, with the configured options. */
class MaestroConnectionProvider(project: Project) : OSProcessStreamConnectionProvider() {
    init {
        val commandLine = GeneralCommandLine(MaestroSettings.getInstance().command())
            .withParentEnvironmentType(GeneralCommandLine.ParentEnvironmentType.CONSOLE)
            .withCharset(Charsets.UTF_8)
        project.basePath?.let { commandLine.withWorkDirectory(it) }
        setCommandLine(commandLine)
    }

    override fun getInitializationOptions(rootUri: VirtualFile?): Any =
        MaestroSettings.getInstance().initializationOptions()
}
