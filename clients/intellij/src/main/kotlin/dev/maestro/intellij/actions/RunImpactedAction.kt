package dev.maestro.intellij.actions

import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.actionSystem.CommonDataKeys
import com.intellij.openapi.fileEditor.FileDocumentManager
import dev.maestro.intellij.MaestroServer

/** `maestro.runImpacted [uri]`: the server answers at once with the run id and runs the impacted
 * tests with work-done progress; failures come back as diagnostics at the failing lines, the
 * outcome as `maestro/runFinished` (MaestroLanguageClient). */
class RunImpactedAction : ProjectAction() {
    override fun actionPerformed(e: AnActionEvent) {
        val project = e.project ?: return
        val file = e.getData(CommonDataKeys.VIRTUAL_FILE)
        // the server follows unsaved buffers, but a saved file gives the daemon the cheaper query
        FileDocumentManager.getInstance().saveAllDocuments()
        val args: Array<Any> = if (file != null && file.isInLocalFileSystem) arrayOf(file.url) else emptyArray()
        MaestroServer.execute(project, "maestro.runImpacted", *args).whenComplete { result, error ->
            if (error != null) {
                MaestroServer.notify(project, "Maestro: ${error.cause?.message ?: error.message}", warning = true)
            }
        }
    }
}
