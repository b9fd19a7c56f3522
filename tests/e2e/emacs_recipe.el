;;; emacs_recipe.el --- drive the README's Emacs recipe as a person would  -*- lexical-binding: t -*-
;; Loaded after the recipe (emacs --batch -q -l recipe.el -l this): visit a source file first
;; (python-mode starts eglot), then a test file that gains an import of that source file and is
;; saved, back in the first buffer M-x maestro-run-impacted (the run counts the saved file), wait
;; for the run's end and the failure diagnostics. The files and the edit are the sample project's
;; unless MAESTRO_SOURCE, MAESTRO_EDIT, MAESTRO_EDIT_HEAD/TAIL and MAESTRO_FAILED name others.
;; Flymake does not run in batch mode, so publishDiagnostics is recorded as it arrives.
;; Writes what it saw as JSON to $MAESTRO_OUT and exits.
(require 'cl-lib)
(require 'json)

(defvar maestro-e2e-diagnostics nil "(uri . diagnostics) as published, newest first.")
(defvar maestro-e2e-finished nil "The maestro/runFinished params.")

(cl-defmethod eglot-handle-notification :before
  (_server (_method (eql textDocument/publishDiagnostics)) &key uri diagnostics &allow-other-keys)
  (push (cons uri diagnostics) maestro-e2e-diagnostics))

(cl-defmethod eglot-handle-notification :before
  (_server (_method (eql maestro/runFinished)) &rest run)
  (setq maestro-e2e-finished run))

(defun maestro-e2e-wait (seconds predicate)
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall predicate)) (< (float-time) deadline))
      (accept-process-output nil 0.1))
    (funcall predicate)))

(defun maestro-e2e-env (name default)
  "The harness's setting NAME from the environment (the real project names its own files)."
  (or (getenv name) default))

(defun maestro-e2e-servers ()
  "How many language servers eglot runs (one project: one server)."
  (let ((count 0))
    (maphash (lambda (_project servers) (setq count (+ count (length servers))))
             eglot--servers-by-project)
    count))

(defun maestro-e2e-restarted (root)
  "A new Emacs (a new server) visiting the test file that failed: its stored failure arrives as
a diagnostic without a run."
  (let* ((failed (maestro-e2e-env "MAESTRO_FAILED" "tests/test_calc.py"))
         (test-uri (concat "file://" (expand-file-name failed root))))
    (find-file (expand-file-name failed root))
    (run-hooks 'post-command-hook)
    (unless (maestro-e2e-wait 90 #'eglot-current-server)
      (error "eglot did not connect"))
    (maestro-e2e-wait 60 (lambda () (cdr (assoc test-uri maestro-e2e-diagnostics))))
    (prog1 (list :diagnostics (vconcat (cdr (assoc test-uri maestro-e2e-diagnostics)))
                 :finished maestro-e2e-finished)
      (eglot-shutdown (eglot-current-server)))))

(defun maestro-e2e-two-files (root)
  "Two Python files visited before the first command (`emacs a.py b.py', a restored desktop):
both eglot-ensure hooks run after that command, while the first server is still starting."
  (let ((a (find-file (expand-file-name "pkg/calc.py" root)))
        (b (find-file (expand-file-name "tests/test_text.py" root)))
        (start (float-time)))
    (run-hooks 'post-command-hook)
    (let ((returned (- (float-time) start)))
      ;; a second server would connect within this time (it starts as the first did)
      (maestro-e2e-wait 90 (lambda () (and (buffer-local-value 'eglot--managed-mode a)
                                           (buffer-local-value 'eglot--managed-mode b))))
      (maestro-e2e-wait 8 (lambda () nil))
      (prog1 (list :servers (maestro-e2e-servers)
                   :returned_s returned
                   :same (and (eq (with-current-buffer a (eglot-current-server))
                                  (with-current-buffer b (eglot-current-server)))
                              t)
                   :processes (vconcat (mapcar #'process-name (process-list))))
        (maphash (lambda (_project servers) (mapc #'eglot-shutdown servers))
                 eglot--servers-by-project)))))

(let ((seen (list))
      (root (getenv "MAESTRO_WS")))
  (condition-case err
      (cond
       ((equal (getenv "MAESTRO_MODE") "restart")
        (setq seen (maestro-e2e-restarted root)))
       ((equal (getenv "MAESTRO_MODE") "two-files")
        (setq seen (maestro-e2e-two-files root)))
       (t
        (find-file (expand-file-name (maestro-e2e-env "MAESTRO_SOURCE" "pkg/calc.py") root))
        (run-hooks 'post-command-hook)  ; the command loop runs it after a command; batch does not
        ;; a person's next command comes once the first server answered: wait for it as they would
        ;; (two files visited at once: the two-files mode)
        (unless (maestro-e2e-wait 90 #'eglot-current-server)
          (error "eglot did not connect"))
        (let ((first (current-buffer)))
          ;; a test file that did not use the source file now does: edited, then saved (C-x C-s)
          (find-file (expand-file-name (maestro-e2e-env "MAESTRO_EDIT" "tests/test_text.py") root))
          (run-hooks 'post-command-hook)
          (unless (maestro-e2e-wait 90 #'eglot-current-server)
            (error "eglot did not manage the second buffer"))
          (goto-char (point-min))
          (insert (maestro-e2e-env "MAESTRO_EDIT_HEAD" "from pkg.calc import add\n"))
          (goto-char (point-max))
          (insert (maestro-e2e-env "MAESTRO_EDIT_TAIL"
                                   "\n\ndef test_add_here():\n    assert add(1, 1) == 2\n"))
          (save-buffer)
          ;; back to the first buffer opened: the commands work there
          (switch-to-buffer first)
          (run-hooks 'post-command-hook))
        (setq seen (plist-put seen :buffer (buffer-name)))
        (setq seen (plist-put seen :server (jsonrpc-name (eglot-current-server))))
        (let ((start (float-time)))
          (call-interactively #'maestro-run-impacted)  ; as M-x maestro-run-impacted
          (setq seen (plist-put seen :answered_s (- (float-time) start)))
          (unless (maestro-e2e-wait 300 (lambda () maestro-e2e-finished))
            (error "the run did not finish"))
          (setq seen (plist-put seen :finished_s (- (float-time) start))))
        (setq seen (plist-put seen :finished maestro-e2e-finished))
        (setq seen (plist-put seen :servers (maestro-e2e-servers)))
        (let ((test-uri (concat "file://" (expand-file-name
                                           (maestro-e2e-env "MAESTRO_FAILED" "tests/test_calc.py")
                                           root))))
          (maestro-e2e-wait 20 (lambda () (cdr (assoc test-uri maestro-e2e-diagnostics))))
          (setq seen (plist-put seen :diagnostics
                                (vconcat (cdr (assoc test-uri maestro-e2e-diagnostics))))))
        (eglot-shutdown (eglot-current-server))))
    (error (setq seen (plist-put seen :error (error-message-string err)))))
  (with-temp-file (getenv "MAESTRO_OUT")
    (insert (json-encode seen)))
  (kill-emacs 0))
