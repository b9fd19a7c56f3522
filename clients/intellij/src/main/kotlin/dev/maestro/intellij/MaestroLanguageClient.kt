package dev.maestro.intellij

import com.intellij.openapi.project.Project
import com.intellij.openapi.wm.WindowManager
import com.redhat.devtools.lsp4ij.client.LanguageClientImpl
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification

/** Handles the server's custom notifications (typed in Protocol.kt, docs/lsp.md). */
class MaestroLanguageClient(project: Project) : LanguageClientImpl(project) {
    @JsonNotification(MaestroMethods.TEST_RESULTS)
    fun testResults(result: RunResult) {
        val passed = result.passed ?: 0
        val failed = result.failed ?: 0
        val cached = result.cachedFiles ?: 0
        val label = result.label ?: "run"
        val text = "Maestro: $label: $passed passed, $failed failed" + if (cached > 0) " ($cached files cached)" else ""
        WindowManager.getInstance().getStatusBar(project)?.info = text
        if (failed > 0) MaestroServer.notify(project, text, warning = true)
    }

    @JsonNotification(MaestroMethods.STATUS_CHANGED)
    fun statusChanged(params: StatusChangedParams) {
        val state = params.state ?: return
        WindowManager.getInstance().getStatusBar(project)?.info = "Maestro daemon: $state"
    }
}
