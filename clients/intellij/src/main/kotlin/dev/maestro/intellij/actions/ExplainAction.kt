package dev.maestro.intellij.actions

import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.actionSystem.CommonDataKeys
import com.intellij.openapi.application.ApplicationManager
import com.intellij.openapi.project.guessProjectDir
import com.intellij.openapi.ui.Messages
import com.intellij.openapi.vfs.VfsUtilCore
import dev.maestro.intellij.ExplainParams
import dev.maestro.intellij.MaestroServer

/** `maestro/explain`: why a test (node id or file) is selected, skipped, cached or re-run. */
class ExplainAction : ProjectAction() {
    override fun actionPerformed(e: AnActionEvent) {
        val project = e.project ?: return
        val file = e.getData(CommonDataKeys.VIRTUAL_FILE)
        val base = project.guessProjectDir()
        val guess = if (file != null && base != null) VfsUtilCore.getRelativePath(file, base) ?: file.path else ""
        val target = Messages.showInputDialog(
            project,
            "Test node id or file:",
            "Maestro: Explain",
            null,
            guess,
            null,
        )?.trim()?.ifEmpty { null } ?: return
        MaestroServer.api(project)
            .thenCompose { server -> server?.explain(ExplainParams(target = target)) ?: error("the Maestro language server is not running") }
            .whenComplete { result, error ->
                ApplicationManager.getApplication().invokeLater {
                    if (error != null) {
                        Messages.showErrorDialog(project, error.cause?.message ?: error.message ?: "error", "Maestro: Explain")
                    } else {
                        val decision = result.decision ?: ""
                        val text = result.text ?: result.toString()
                        Messages.showInfoMessage(project, text, "Maestro: $target — $decision")
                    }
                }
            }
    }
}
